"""On-disk layouts of the real datasets and the checks that give clear errors about them.

The synthetic benchmark is written in these same layouts, so one set of dataset classes reads
real and synthetic data.
"""
from __future__ import annotations

import os
import os.path as osp
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from domino_seg.conditions import ACDC_IMAGE_SUFFIX, CITYSCAPES_IMAGE_SUFFIX
from domino_seg.errors import DataError

IGNORE_INDEX = 255
# label files read per split to find one that is not all ignore
LABEL_SAMPLE = 16


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
    img_suffix=CITYSCAPES_IMAGE_SUFFIX, seg_map_suffix='_gtFine_labelTrainIds.png',
    config_key='paths.cityscapes',
    download='https://www.cityscapes-dataset.com (leftImg8bit_trainvaltest.zip, '
             'gtFine_trainvaltest.zip; make the *_labelTrainIds.png files with '
             'cityscapesscripts/preparation/createTrainIdLabelImgs.py)')

ACDC = Layout(
    name='ACDC',
    img_dir='rgb_anon/{cond}/{split}', ann_dir='gt/{cond}/{split}',
    img_suffix=ACDC_IMAGE_SUFFIX, seg_map_suffix='_gt_labelTrainIds.png',
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
    image and (with ``labels``) label folders of one split are missing or hold no image, and
    a DataError naming the files when images have no label file or the labels are unusable
    (see :func:`check_labels`). ``labels=False`` is for prediction-only runs on splits
    without public labels (test)."""
    img_dir = osp.join(root, layout.img_dir.format(split=split, cond=cond))
    ann_dir = osp.join(root, layout.ann_dir.format(split=split, cond=cond))
    what = f'{layout.name} {cond + " " if cond else ""}{split} split'
    if not osp.isdir(root):
        problem = f'{layout.name} root {root!r} does not exist.'
    elif not osp.isdir(img_dir) or (labels and not osp.isdir(ann_dir)):
        missing = img_dir if not osp.isdir(img_dir) else ann_dir
        problem = f'the {what} is missing: no folder {missing!r}.'
    elif not (images := scan(img_dir, layout.img_suffix)):
        problem = f'the {what} is empty: no *{layout.img_suffix} under {img_dir!r}.'
    else:
        if labels:
            check_labels(layout, what, ann_dir, images)
        return
    raise DataError(
        f'{problem}\n'
        f'Expected layout:\n  {_expected(layout, root, split, cond, labels)}\n'
        f'Get the data from {layout.download}, then set `{layout.config_key}=/path/to/'
        f'{layout.name.lower()}` (or edit configs/paths/default.yaml). To run without data, '
        f'use the built-in synthetic benchmark (the default: python tools/train.py).')


def scan(folder: str, suffix: str) -> list[str]:
    """The files below ``folder`` ending in ``suffix`` (paths relative to it), following
    symbolic links as mmseg's dataset scan (mmengine's ``list_dir_or_file``) does. A link
    loop, on which that scan fails with ELOOP, is a DataError naming the link."""
    found = []

    def loop(link: str, detail: str) -> DataError:
        return DataError(f'{link} is a symbolic link loop ({detail}): the dataset scan of '
                         f'{folder} would follow it forever. Remove the link (rm {link}) or '
                         'point it at a folder outside the one that holds it.')

    def visit(path: str, ancestors: frozenset) -> None:
        with os.scandir(path) as entries:
            entries = list(entries)
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as err:  # a link to itself, or a cycle of links
                raise loop(entry.path, err.strerror) from None
            if is_dir:
                real = osp.realpath(entry.path)
                if real in ancestors:
                    raise loop(entry.path, f'it leads back to {real}, which contains it')
                visit(entry.path, ancestors | {real})
            elif is_file and entry.name.endswith(suffix) and not entry.name.startswith('.'):
                found.append(osp.relpath(entry.path, folder))

    visit(folder, frozenset([osp.realpath(folder)]))
    return found


def check_labels(layout: Layout, what: str, ann_dir: str, images: list[str]) -> None:
    """Every image needs its label file (mmseg would only fail when it loads that sample,
    mid-training); and a split whose labels are all ignore would train with loss 0 and score
    nothing: up to ``LABEL_SAMPLE`` label files spread over the split are read until one has
    a class."""
    wanted = [image[:-len(layout.img_suffix)] + layout.seg_map_suffix for image in sorted(images)]
    missing = [path for label in wanted if not osp.isfile(path := osp.join(ann_dir, label))]
    if missing:
        label_ids = layout.seg_map_suffix.replace('TrainIds', 'Ids')
        only_ids = label_ids != layout.seg_map_suffix and \
            osp.isfile(missing[0][:-len(layout.seg_map_suffix)] + label_ids)
        raise DataError(
            f'{len(missing)} of {len(images)} images of the {what} have no label file '
            f'*{layout.seg_map_suffix} (e.g. {", ".join(missing[:3])}). '
            + (f'Only *{label_ids} files are there: those hold labelIds, not the trainIds '
               'training needs. ' if only_ids else '')
            + f'Get the label files from {layout.download}.')
    sample = wanted[::max(1, len(wanted) // LABEL_SAMPLE)][:LABEL_SAMPLE]
    for label in sample:
        path = osp.join(ann_dir, label)
        with readable(path, 'label'):
            check_label_file(path)
            with Image.open(path) as image:
                if (np.asarray(image) != IGNORE_INDEX).any():
                    return
    raise DataError(
        f'every label file read from the {what} is all {IGNORE_INDEX} (ignore): {len(sample)} '
        f'of {len(wanted)} spread over the split, e.g. {osp.join(ann_dir, sample[0])}. Training '
        'on them would learn nothing (loss 0) and evaluating them would score nothing. They are '
        'not trainId maps (e.g. converted with the wrong id mapping): get the label files from '
        f'{layout.download}.')


def check_label_file(path: str) -> None:
    """Fail, naming the file, on label maps that mmseg's loader would mangle: a colour image
    (three channels: a traceback when the batch is stacked or scored) or a 16-bit one with ids
    above 255 (cast to 8 bits: 258 silently becomes class 2). Reads the header only for 8-bit
    single-channel images, the normal case."""
    with Image.open(path) as image:
        if len(image.getbands()) > 1:
            raise DataError(
                f'label file {path} is a colour image ({image.mode}, {len(image.getbands())} '
                'channels); labels must be single-channel trainId maps (*_labelTrainIds.png, '
                f'one id per pixel, {IGNORE_INDEX} = ignore), not colour renderings '
                '(*_color.png). Use the dataset\'s *_labelTrainIds.png files, or save the ids '
                'as an 8-bit grey PNG (mode L).')
        if image.mode in ('1', 'L', 'P'):
            return
        mode, values = image.mode, np.asarray(image)
    low, high = values.min().item(), values.max().item()
    if low < 0 or high > IGNORE_INDEX:
        raise DataError(
            f'label file {path} is a {mode} image with ids {low}..{high}: read as 8-bit '
            f'labels, ids above 255 wrap around (e.g. {high} -> {high % 256}) and would train '
            f'as wrong classes. Labels must be trainId maps (ids below 256, {IGNORE_INDEX} = '
            'ignore) saved as 8-bit grey PNGs (mode L): map the ids to trainIds first (for '
            'Cityscapes: cityscapesscripts/preparation/createTrainIdLabelImgs.py).')


@contextmanager
def readable(path: str, what: str):
    """mmcv reports an undecodable file with a bare assertion, PIL with 'image file is
    truncated': both become a DataError naming the file."""
    try:
        yield
    except DataError:
        raise
    except (AssertionError, OSError, ValueError) as err:
        raise DataError(f'{what} file {path} cannot be read ({err}): it is truncated, empty or '
                        'not a PNG/JPEG (e.g. a half-copied dataset). Copy it again from the '
                        'original dataset.') from None
