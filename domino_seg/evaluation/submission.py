"""Predictions in the official format of the Cityscapes and ACDC evaluation servers
(``tools/test.py submission=cityscapes``).

Both servers score with ``cityscapesscripts``: predictions are single-channel PNGs of
Cityscapes *labelIds* (not trainIds), found for each ground-truth file by the prefix
``<city>_<seq>_<frame>`` anywhere in the submitted tree (ACDC names parse the same way:
``GOPR0475_frame_000041``). We write ``<prefix>_labelIds.png`` under
``<out_dir>/<condition>/<sequence>/``, so ``cityscapes/`` zips for the Cityscapes server and
``fog/ night/ rain/ snow/`` zip for the ACDC server.
"""
from __future__ import annotations

import os.path as osp

import numpy as np
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from domino_seg.conditions import TRAIN_ID_TO_ID, image_stem
from domino_seg.errors import ConfigError
from domino_seg.evaluation.metrics import WRITE_FIX
from domino_seg.io import atomic_write_png, reported_write

FORMATS = ('cityscapes',)
SUFFIX = '_labelIds.png'


def check_format(submission, num_classes: int) -> None:
    if submission not in FORMATS:
        raise ConfigError(f'submission={submission!r} is not a known format; use '
                          'submission=cityscapes (labelIds PNGs for the Cityscapes and ACDC '
                          'servers) or submission=null.')
    if num_classes != 19:
        raise ConfigError(f'submission={submission} writes the 19 Cityscapes classes, but '
                          f'data.num_classes is {num_classes}; submission=null for other label '
                          'sets.')


def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes trainIds 0..18 -> labelIds (7, 8, 11, ..., 33); 255 (ignore) -> 0."""
    return TRAIN_ID_TO_ID[train_ids.astype(np.uint8)]


def submission_name(condition: str, rel_path: str) -> str:
    """``<city>/<city>_<seq>_<frame>_leftImg8bit.png`` ->
    ``cityscapes/<city>/<city>_<seq>_<frame>_labelIds.png``; ACDC's ``<seq>/<name>_rgb_anon.png``
    -> ``<condition>/<seq>/<name>_labelIds.png``."""
    return osp.join(condition, image_stem(rel_path) + SUFFIX)


@HOOKS.register_module()
class CityscapesSubmissionHook(Hook):
    """Writes every test prediction as a labelIds PNG named for the evaluation servers."""

    priority = 'LOW'

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        # every rank writes the samples it predicted
        for sample in outputs:
            pred = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
            rel = sample.metainfo.get('rel_path') or osp.basename(sample.img_path)
            path = osp.join(self.out_dir, submission_name(sample.condition, rel))
            with reported_write(path, WRITE_FIX):
                atomic_write_png(path, to_label_ids(pred))
