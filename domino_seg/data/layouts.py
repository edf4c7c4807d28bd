"""On-disk layouts of the real datasets and the checks that give clear errors about them.

The synthetic benchmark is written in these same layouts, so one set of dataset classes reads
real and synthetic data.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from pathlib import Path

from domino_seg.errors import DataError



@dataclass(frozen=True)
class Layout:
    name: str
    img_dir: str          # relative to the root; {split} and {cond} are filled in
    ann_dir: str
    img_suffix: str
    seg_map_suffix: str
    config_key: str
    download: str


CITYSCAPES = Layout(
    name='Cityscapes',
    img_dir='leftImg8bit/{split}', ann_dir='gtFine/{split}',
    img_suffix='_leftImg8bit.png', seg_map_suffix='_gtFine_labelTrainIds.png',
    config_key='paths.cityscapes',
    download='https://www.cityscapes-dataset.com (leftImg8bit_trainvaltest.zip, '
             'gtFine_trainvaltest.zip; make the *_labelTrainIds.png files with '
             'cityscapesscripts/preparation/createTrainIdLabelImgs.py)')

ACDC = Layout(
    name='ACDC',
    img_dir='rgb_anon/{cond}/{split}', ann_dir='gt/{cond}/{split}',
    img_suffix='_rgb_anon.png', seg_map_suffix='_gt_labelTrainIds.png',
    config_key='paths.acdc',
    download='https://acdc.vision.ee.ethz.ch (rgb_anon_trainvaltest.zip, gt_trainval.zip)')


def _expected(layout: Layout, root: str, split: str, cond: str, labels: bool) -> str:
    img = osp.join(root, layout.img_dir.format(split=split, cond=cond), '<seq>',
                   '<name>' + layout.img_suffix)
    ann = osp.join(root, layout.ann_dir.format(split=split, cond=cond), '<seq>',
                   '<name>' + layout.seg_map_suffix)
    return f'{img}\n  {ann}' if labels else img


def check_split(layout: Layout, root: str, split: str, cond: str = '',
                labels: bool = True) -> None:
    """Raise a DataError naming the expected layout, download site and config key when the
    image and (with ``labels``) label folders of one split are missing or hold no image.
    ``labels=False`` is for prediction-only runs on splits without public labels (test)."""
    img_dir = osp.join(root, layout.img_dir.format(split=split, cond=cond))
    ann_dir = osp.join(root, layout.ann_dir.format(split=split, cond=cond))
    what = f'{layout.name} {cond + " " if cond else ""}{split} split'
    if not osp.isdir(root):
        problem = f'{layout.name} root {root!r} does not exist.'
    elif not osp.isdir(img_dir) or (labels and not osp.isdir(ann_dir)):
        missing = img_dir if not osp.isdir(img_dir) else ann_dir
        problem = f'the {what} is missing: no folder {missing!r}.'
    elif not _has_file(img_dir, layout.img_suffix):
        problem = f'the {what} is empty: no *{layout.img_suffix} under {img_dir!r}.'
    else:
        return
    raise DataError(
        f'{problem}\n'
        f'Expected layout:\n  {_expected(layout, root, split, cond, labels)}\n'
        f'Get the data from {layout.download}, then set `{layout.config_key}=/path/to/'
        f'{layout.name.lower()}` (or edit configs/paths/default.yaml). To run without data, '
        f'use the built-in synthetic benchmark (the default: python tools/train.py).')


def _has_file(folder: str, suffix: str) -> bool:
    return next(Path(folder).rglob('*' + suffix), None) is not None
