"""ACDC (fog / night / rain / snow) in its real on-disk layout, which the synthetic benchmark
also writes its other conditions in."""
from __future__ import annotations

import os.path as osp
from typing import Sequence, Union

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from domino_seg.conditions import ACDC_CONDITIONS
from domino_seg.data.cityscapes import tag_samples
from domino_seg.data.layouts import ACDC, check_split
from domino_seg.data.synthetic import RENDERABLE
from domino_seg.errors import ConfigError


def parse_conditions(condition: Union[str, Sequence[str]]) -> tuple[str, ...]:
    """'fog' -> ('fog',); 'all' -> ACDC's four; a list is validated item by item (the
    synthetic benchmark's conditions are valid too: the data config checks which a run has)."""
    names = ACDC_CONDITIONS if condition == 'all' else (
        (condition,) if isinstance(condition, str) else tuple(condition))
    unknown = [c for c in names if c not in RENDERABLE]
    if unknown or not names:
        raise ConfigError(f'unknown ACDC condition {unknown or condition!r}; valid: '
                          f'{", ".join(ACDC_CONDITIONS)} or "all" (the synthetic benchmark '
                          f'also: {", ".join(RENDERABLE[len(ACDC_CONDITIONS):])}).')
    return names


@DATASETS.register_module()
class ACDCDataset(CityscapesDataset):
    """ACDC: ``<root>/rgb_anon/<cond>/<split>/<seq>/<name>_rgb_anon.png`` with labels in
    ``<root>/gt/<cond>/<split>/<seq>/<name>_gt_labelTrainIds.png`` (Cityscapes trainIds).

    ``condition`` is one of fog/night/rain/snow (or another synthetic benchmark condition),
    ``'all'`` or a list; each sample carries its own condition, so an 'all' split is still
    scored per condition. ``labels=False`` reads
    the images only (e.g. the test split, whose labels are not public).
    """

    def __init__(self, data_root: str, condition: Union[str, Sequence[str]] = 'all',
                 split: str = 'val', labels: bool = True, **kwargs) -> None:
        self.conditions = parse_conditions(condition)
        self.split = split
        self.labels = labels
        super().__init__(data_root=data_root, img_suffix=ACDC.img_suffix,
                         seg_map_suffix=ACDC.seg_map_suffix, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = []
        for cond in self.conditions:
            check_split(ACDC, self.data_root, self.split, cond, labels=self.labels)
            img_dir = osp.join(self.data_root, ACDC.img_dir.format(split=self.split, cond=cond))
            ann_dir = osp.join(self.data_root, ACDC.ann_dir.format(split=self.split, cond=cond))
            # mmseg scans ``data_prefix``; point it at one condition at a time.
            self.data_prefix = dict(img_path=img_dir)
            if self.labels:
                self.data_prefix['seg_map_path'] = ann_dir
            data_list += tag_samples(super().load_data_list(), cond, img_dir)
        return data_list
