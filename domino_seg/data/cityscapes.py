"""Cityscapes (clear weather) with a condition tag and clear errors about a missing root."""
from __future__ import annotations

import os.path as osp

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

from domino_seg.data.layouts import CITYSCAPES, check_split


def tag_samples(data_list: list[dict], condition: str, img_dir: str) -> list[dict]:
    """Add what evaluation needs to each sample: its weather condition and its image path
    relative to the split folder (used to mirror predictions on disk)."""
    for info in data_list:
        info['condition'] = condition
        info['rel_path'] = osp.relpath(info['img_path'], img_dir)
    return data_list


@DATASETS.register_module()
class DominoCityscapesDataset(CityscapesDataset):
    """mmseg's CityscapesDataset reading ``<root>/{leftImg8bit,gtFine}/<split>``.

    Every sample carries ``condition='cityscapes'`` so per-condition metrics never depend on
    batch position. ``labels=False`` reads the images only (e.g. the test split, whose labels
    are not public).
    """

    def __init__(self, data_root: str, split: str = 'val', condition: str = 'cityscapes',
                 labels: bool = True, **kwargs) -> None:
        self.split = split
        self.condition = condition
        self.labels = labels
        prefix = dict(img_path=CITYSCAPES.img_dir.format(split=split))
        if labels:
            prefix['seg_map_path'] = CITYSCAPES.ann_dir.format(split=split)
        kwargs.setdefault('data_prefix', prefix)
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        check_split(CITYSCAPES, self.data_root, self.split, labels=self.labels)
        data_list = tag_samples(super().load_data_list(), self.condition,
                                self.data_prefix['img_path'])
        # Cityscapes' disparity maps give training-time weather augmentation its depth
        disparity_dir = osp.join(self.data_root, 'disparity', self.split)
        for info in data_list:
            path = osp.join(disparity_dir, info['rel_path'].replace(self.img_suffix,
                                                                    '_disparity.png'))
            if osp.isfile(path):
                info['disparity_path'] = path
        return data_list
