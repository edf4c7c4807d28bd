"""Images generated from Cityscapes label maps (e.g. by a layout-to-image diffusion model),
paired with those labels by the Cityscapes stem ``<city>_<seq>_<frame>``.

Accepted layouts of one generated domain folder (one folder per domain, as ALDM writes them:
``<out>_<domain>/<city>_<seq>_<frame>.png``): images directly in it or nested in ``<city>/``
folders, with or without the ``_leftImg8bit`` suffix, PNG or JPEG. The label of an image is the
Cityscapes trainId map of the same stem (``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds
.png``); when the generated image has another size (of the same aspect ratio), the label is
resized to it with nearest neighbour (:class:`~domino_seg.data.transforms.MatchLabelToImage`).
Each image is checked from its header before use: a colour image file, one per stem.
"""
from __future__ import annotations

import os
import os.path as osp
import re

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS
from PIL import Image

from domino_seg.data.cityscapes import tag_samples
from domino_seg.data.layouts import CITYSCAPES, check_label_file, readable
from domino_seg.errors import DataError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
IMAGE_MODES = ('RGB', 'RGBA')  # PIL modes of a colour image (16-bit PNGs open as RGB)
ASPECT_TOLERANCE = 0.01  # relative difference of width/height to the label's (rounding)
STEM = re.compile(r'^(?P<city>[A-Za-z-]+)_(?P<seq>\d{6})_(?P<frame>\d{6})'
                  r'(?:_leftImg8bit)?$')
EXPECTED = ('<city>_<seq>_<frame>.png (e.g. aachen_000000_000019.png), optionally in '
            '<city>/ folders or with the _leftImg8bit suffix')


def scan_generated(folder: str, labels_root: str, split: str) -> list[tuple[str, str]]:
    """(image, label) pairs of one generated domain folder, sorted by image path; a DataError
    names the folder or file when the folder holds no image, or an image has no Cityscapes
    stem or no label, is not a colour image file, shares its stem with another image (it would
    be trained on twice) or has another aspect ratio than its label (then it was not made from
    that label map, which would be resized onto it with wrong content)."""
    if not osp.isdir(folder):
        raise DataError(f'generated images folder {folder!r} does not exist. Point the '
                        'source\'s root at a folder of generated images named ' + EXPECTED + '.')
    images = sorted(osp.join(dirpath, name)
                    for dirpath, _, names in os.walk(folder)
                    for name in names if name.lower().endswith(IMAGE_SUFFIXES))
    if not images:
        raise DataError(f'generated images folder {folder!r} holds no image (*.png, *.jpg); '
                        f'expected {EXPECTED}.')
    pairs, by_stem = [], {}
    for image in images:
        match = STEM.match(osp.splitext(osp.basename(image))[0])
        if match is None:
            raise DataError(f'generated image {image} is not named by a Cityscapes stem, so '
                            f'its label cannot be found; expected {EXPECTED}. Rename it, or '
                            'move files that are not generated from Cityscapes out of '
                            f'{folder!r}.')
        stem = f"{match['city']}_{match['seq']}_{match['frame']}"
        if stem in by_stem:
            raise DataError(f'generated images {by_stem[stem]} and {image} are both named '
                            f'{stem}, so both take its label and the image would be trained on '
                            f'twice as often: keep one of them in {folder!r}.')
        by_stem[stem] = image
        label = osp.join(labels_root, CITYSCAPES.ann_dir.format(split=split), match['city'],
                         stem + CITYSCAPES.seg_map_suffix)
        if not osp.isfile(label):
            raise DataError(f'generated image {image} has no Cityscapes label: {label} does not '
                            f'exist. Generated images take the label of the Cityscapes {split} '
                            'image they were made from: check the source\'s labels_root and '
                            'split (and make *_labelTrainIds.png files with cityscapesscripts/'
                            'preparation/createTrainIdLabelImgs.py).')
        _check_pair(image, label)
        pairs.append((image, label))
    return pairs


def _size(path: str, what: str) -> tuple[tuple[int, int], str]:
    """(width, height), PIL mode of an image file, from its header (no pixels decoded)."""
    with readable(path, what), Image.open(path) as opened:
        return opened.size, opened.mode


def _check_pair(image: str, label: str) -> None:
    """A colour image of the label's aspect ratio (any scale: generators often work at
    another resolution, and the label is resized to the image), and a label file mmseg reads
    as trainIds (:func:`~domino_seg.data.layouts.check_label_file`)."""
    (width, height), mode = _size(image, 'generated image')
    if mode not in IMAGE_MODES:
        raise DataError(f'generated image {image} is a {mode} image (PIL mode), not a colour '
                        'image (RGB): a grey or palette PNG named by a stem is usually a label '
                        'map. Save the generated image in colour, or move it out of the folder.')
    with readable(label, 'label'):
        check_label_file(label)
    (label_width, label_height), _ = _size(label, 'label')
    if abs(width * label_height / (height * label_width) - 1) > ASPECT_TOLERANCE:
        raise DataError(f'generated image {image} is {width}x{height} but its label {label} is '
                        f'{label_width}x{label_height}: another aspect ratio, so the image was '
                        'not generated from that label map (or was cropped). Regenerate it at '
                        'the label\'s aspect ratio, or check that it is named by the stem of the '
                        'label it was made from.')


@DATASETS.register_module()
class GeneratedDataset(CityscapesDataset):
    """One generated domain: images under ``data_root`` tagged ``condition``, labelled by the
    Cityscapes ``split`` labels under ``labels_root``."""

    def __init__(self, data_root: str, condition: str, labels_root: str,
                 split: str = 'train', **kwargs) -> None:
        self.condition = condition
        self.labels_root = labels_root
        self.split = split
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = [dict(img_path=image, seg_map_path=label, label_map=self.label_map,
                          reduce_zero_label=self.reduce_zero_label, seg_fields=[],
                          match_label_to_image=True)
                     for image, label in scan_generated(self.data_root, self.labels_root,
                                                        self.split)]
        return tag_samples(data_list, self.condition, self.data_root)
