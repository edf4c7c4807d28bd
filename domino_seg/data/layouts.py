"""On-disk layouts of the real datasets and the checks that give clear errors about them.

The synthetic benchmark is written in these same layouts, so one set of dataset classes reads
real and synthetic data.
"""
from __future__ import annotations

import os
import os.path as osp
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from PIL import Image

from domino_seg.conditions import ACDC_IMAGE_SUFFIX, CITYSCAPES_IMAGE_SUFFIX
from domino_seg.data.label_maps import lookup_table
from domino_seg.errors import DataError

IGNORE_INDEX = 255
# label files read per split to find one that is not all ignore
LABEL_SAMPLE = 16


SYNTHETIC_HINT = ('To run without data, use the built-in synthetic benchmark (the default: '
                  'python tools/train.py).')


@dataclass(frozen=True)
class Layout:
    name: str
    img_dir: str          # relative to the root; {split} and {cond} are filled in
    ann_dir: str
    img_suffix: Union[str, tuple]   # one suffix, or several (an image ends in one of them)
    seg_map_suffix: str   # replaces the image suffix in the label file's name
    config_key: str
    download: str
    # what lies between the split folder and a file in the expected layout shown in errors
    nesting: str = '<seq>'
    # 256-entry table label id -> trainId for datasets with ids of their own (label_maps.py);
    # the label checks read the mapped ids
    label_map: Optional[tuple] = None
    # the last sentence of a missing-data error
    hint: str = SYNTHETIC_HINT


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

# Evaluation sets (data.eval_sets; see data/eval_sets.py). Their official layouts:

# Dark Zurich (Sakaridis et al., ICCV 2019): Dark_Zurich_val_anon.zip unpacks to
# rgb_anon/val/night/GOPR0356/GOPR0356_frame_<n>_rgb_anon.png with the labels (Cityscapes
# trainIds, also *_gt_labelIds.png, *_gt_labelColor.png and the invalid masks *_gt_invIds.png)
# in gt/val/night/GOPR0356/; as read by mmseg's DarkZurichDataset (configs/_base_/datasets/
# dark_zurich.py). The test split (151 images) ships without labels.
DARK_ZURICH = Layout(
    name='Dark Zurich',
    img_dir='rgb_anon/{split}/night', ann_dir='gt/{split}/night',
    img_suffix=ACDC_IMAGE_SUFFIX, seg_map_suffix='_gt_labelTrainIds.png',
    config_key='paths.dark_zurich',
    download='https://www.trace.ethz.ch/publications/2019/GCMA_UIoU (Dark_Zurich_val_anon.zip: '
             '50 labelled night images; Dark_Zurich_test_anon_withoutGt.zip: the test split, '
             'without labels)')

# Foggy Cityscapes (Sakaridis et al., IJCV 2018), from the Cityscapes downloads
# (leftImg8bit_trainvaltest_foggy.zip): leftImg8bit_foggy/<split>/<city>/
# <city>_<seq>_<frame>_leftImg8bit_foggy_beta_<beta>.png, three fog densities beta = 0.005,
# 0.01, 0.02 of every Cityscapes image, labelled by the Cityscapes gtFine labels.
FOGGY_BETAS = ('0.005', '0.01', '0.02')


def foggy_cityscapes(beta: str) -> Layout:
    """The Foggy Cityscapes images of one fog density ``beta`` (one of FOGGY_BETAS)."""
    return Layout(
        name='Foggy Cityscapes',
        img_dir='leftImg8bit_foggy/{split}', ann_dir=CITYSCAPES.ann_dir,
        img_suffix=f'_leftImg8bit_foggy_beta_{beta}.png',
        seg_map_suffix=CITYSCAPES.seg_map_suffix, nesting='<city>',
        config_key='paths.foggy_cityscapes',
        download='https://www.cityscapes-dataset.com/downloads '
                 '(leftImg8bit_trainvaltest_foggy.zip, unpacked into the Cityscapes root beside '
                 'gtFine/; the labels are Cityscapes\' gtFine *_labelTrainIds.png, made with '
                 'cityscapesscripts/preparation/createTrainIdLabelImgs.py)')


# BDD100K semantic segmentation (https://doc.bdd100k.com/download.html, "10K Images" and
# "Semantic Segmentation"; both unpack into bdd100k/): bdd100k/images/10k/{train,val,test}/
# <name>.jpg, bdd100k/labels/sem_seg/masks/{train,val}/<name>.png (8-bit, the 19 Cityscapes
# trainIds, 255 = unknown: https://doc.bdd100k.com/format.html; colormaps/, polygons/ and
# rles/ beside masks/ are other encodings of the same labels). The root is that bdd100k/.
BDD100K = Layout(
    name='BDD100K',
    img_dir='images/10k/{split}', ann_dir='labels/sem_seg/masks/{split}',
    img_suffix='.jpg', seg_map_suffix='.png', nesting='',
    config_key='paths.bdd100k',
    download='https://bdd-data.berkeley.edu ("10K Images" and "Semantic Segmentation": '
             'bdd100k_images_10k.zip, bdd100k_sem_seg_labels_trainval.zip, both unpacking into '
             'bdd100k/; layout at https://doc.bdd100k.com/download.html)')

# Mapillary Vistas research edition: {training,validation,testing}/images/<name>.jpg and
# {training,validation}/labels/<name>.png (8-bit palette images of the 66 v1.2 class ids,
# README of v1.1/v1.2); the v2.0 release keeps the v1.2 labels in {training,validation}/
# v1.2/labels (and 124-class ones in v2.0/labels). Ids map to trainIds by label_maps.py.
MAPILLARY = Layout(
    name='Mapillary Vistas',
    img_dir='{split}/images', ann_dir='{split}/labels',
    img_suffix='.jpg', seg_map_suffix='.png', nesting='',
    label_map=tuple(lookup_table('mapillary_v1.2')[0].tolist()),
    config_key='paths.mapillary',
    download='https://www.mapillary.com/dataset/vistas (research edition; the v1.2 labels, 66 '
             'classes: <split>/labels, or <split>/v1.2/labels in the v2.0 release)')

# A user's own field data, one folder per condition: <root>/<condition>/images/<...>/<name>
# .png|.jpg and <root>/<condition>/labels/<...>/<name>.png (trainIds, 255 = ignore)
FOLDER_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.PNG', '.JPG', '.JPEG')
CONDITION_FOLDERS = Layout(
    name='My conditions',
    img_dir='{cond}/images', ann_dir='{cond}/labels',
    img_suffix=FOLDER_IMAGE_SUFFIXES, seg_map_suffix='.png', nesting='<...>',
    config_key='data.eval_sets[<i>].root',
    download='your own recordings (each condition a folder <root>/<condition>/: the images in '
             'images/, their labels under the same names in labels/, 8-bit grey PNGs of the 19 '
             'Cityscapes trainIds, 255 = ignore)')


def suffixes(layout: Layout) -> tuple:
    return (layout.img_suffix,) if isinstance(layout.img_suffix, str) else layout.img_suffix


def shown_suffix(layout: Layout) -> str:
    """``_leftImg8bit.png``; several suffixes as ``.png|.jpg`` (case variants once)."""
    shown = {}
    for suffix in suffixes(layout):
        shown.setdefault(suffix.lower(), suffix)
    return '|'.join(shown.values())


def label_name(layout: Layout, image: str) -> str:
    """The label file of ``image`` (a path relative to the split's image folder): its name with
    the image suffix replaced by the label suffix."""
    suffix = next(s for s in suffixes(layout) if image.endswith(s))
    return image[:-len(suffix)] + layout.seg_map_suffix


def _expected(layout: Layout, root: str, split: str, cond: str, labels: bool,
              ann_root: str) -> str:
    nesting = [layout.nesting] if layout.nesting else []
    img = osp.join(root, layout.img_dir.format(split=split, cond=cond), *nesting,
                   '<name>' + shown_suffix(layout))
    ann = osp.join(ann_root, layout.ann_dir.format(split=split, cond=cond), *nesting,
                   '<name>' + layout.seg_map_suffix)
    return f'{img}\n  {ann}' if labels else img


def check_split(layout: Layout, root: str, split: str, cond: str = '',
                labels: bool = True, ann_root: Optional[str] = None,
                what: Optional[str] = None) -> None:
    """Raise a DataError naming the expected layout, download site and config key when the
    image and (with ``labels``) label folders of one split are missing or hold no image, and
    a DataError naming the files when images have no label file or the labels are unusable
    (see :func:`check_labels`). ``labels=False`` is for prediction-only runs on splits
    without public labels (test). ``ann_root``: the root of the label folders when it is not
    ``root``; ``what`` names the split in the messages."""
    ann_root = root if ann_root is None else ann_root
    img_dir = osp.join(root, layout.img_dir.format(split=split, cond=cond))
    ann_dir = osp.join(ann_root, layout.ann_dir.format(split=split, cond=cond))
    what = what or f'{layout.name} {cond + " " if cond else ""}{split} split'
    if not osp.isdir(root):
        problem = f'{layout.name} root {root!r} does not exist.'
    elif labels and not osp.isdir(ann_root):
        problem = f'{layout.name} label root {ann_root!r} does not exist.'
    elif not osp.isdir(img_dir) or (labels and not osp.isdir(ann_dir)):
        missing = img_dir if not osp.isdir(img_dir) else ann_dir
        problem = f'the {what} is missing: no folder {missing!r}.'
    elif not (images := scan(img_dir, layout.img_suffix)):
        problem = f'the {what} is empty: no *{shown_suffix(layout)} under {img_dir!r}.'
    else:
        if labels:
            check_labels(layout, what, ann_dir, images, img_dir)
        return
    slug = layout.name.lower().replace(' ', '_')
    paths = ' (or edit configs/paths/default.yaml)' if layout.config_key.startswith('paths.') \
        else ''
    raise DataError(
        f'{problem}\n'
        f'Expected layout:\n  {_expected(layout, root, split, cond, labels, ann_root)}\n'
        f'Get the data from {layout.download}, then set `{layout.config_key}=/path/to/'
        f'{slug}`{paths}. {layout.hint}')


def scan(folder: str, suffix: Union[str, tuple]) -> list[str]:
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


def check_labels(layout: Layout, what: str, ann_dir: str, images: list[str],
                 img_dir: str = '') -> None:
    """Every image needs its label file (mmseg would only fail when it loads that sample,
    mid-training); and a split whose labels are all ignore would train with loss 0 and score
    nothing: up to ``LABEL_SAMPLE`` label files spread over the split are read until one has
    a class."""
    images = sorted(images)
    wanted = [label_name(layout, image) for image in images]
    shared = {}
    for image, label in zip(images, wanted):
        if label in shared:
            raise DataError(
                f'images {osp.join(img_dir, shared[label])} and {osp.join(img_dir, image)} of the '
                f'{what} would share one label file, {osp.join(ann_dir, label)}: two images of '
                'the same name but another type (e.g. .png and .jpg). Keep one of them.')
        shared[label] = image
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
                values = np.asarray(image)
            if layout.label_map is not None:
                values = np.asarray(layout.label_map, np.uint8)[values]
            if (values != IGNORE_INDEX).any():
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
