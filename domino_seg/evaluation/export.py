"""Predictions in the official format of the Cityscapes and ACDC evaluation servers.

Both servers score with ``cityscapesscripts``: predictions are single-channel PNGs of
Cityscapes *labelIds* (not trainIds), found for each ground-truth file by the prefix
``<city>_<seq>_<frame>`` anywhere in the submitted tree (ACDC names parse the same way:
``GOPR0475_frame_000041``). We write ``<prefix>_labelIds.png`` under
``<out_dir>/<condition>/<sequence>/``, so ``cityscapes/`` zips for the Cityscapes server and
``fog/ night/ rain/ snow/`` zip for the ACDC server.
"""
from __future__ import annotations

import io
import os.path as osp

import numpy as np
from PIL import Image

from domino_seg import compat  # noqa: F401  (before mmseg)
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from domino_seg.data.layouts import ACDC, CITYSCAPES
from domino_seg.data.synthetic import TRAIN_ID_TO_ID
from domino_seg.errors import ConfigError
from domino_seg.io import atomic_write_bytes

FORMATS = ('cityscapes',)


def check_format(export, num_classes: int) -> None:
    if export not in FORMATS:
        raise ConfigError(f'export={export!r} is not a known format; use export=cityscapes '
                          '(labelIds PNGs for the Cityscapes and ACDC servers) or export=null.')
    if num_classes != 19:
        raise ConfigError(f'export={export} writes the 19 Cityscapes classes, but '
                          f'data.num_classes is {num_classes}; export=null for other label sets.')


def to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes trainIds 0..18 -> labelIds (7, 8, 11, ..., 33); 255 (ignore) -> 0."""
    return TRAIN_ID_TO_ID[train_ids.astype(np.uint8)]


def export_name(condition: str, rel_path: str) -> str:
    """``<city>/<city>_<seq>_<frame>_leftImg8bit.png`` ->
    ``cityscapes/<city>/<city>_<seq>_<frame>_labelIds.png``; ACDC's ``<seq>/<name>_rgb_anon.png``
    -> ``<condition>/<seq>/<name>_labelIds.png``."""
    suffix = CITYSCAPES.img_suffix if condition == 'cityscapes' else ACDC.img_suffix
    stem = rel_path[:-len(suffix)] if rel_path.endswith(suffix) else osp.splitext(rel_path)[0]
    return osp.join(condition, stem + '_labelIds.png')


def write_label_ids(train_ids: np.ndarray, path: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(to_label_ids(train_ids)).save(buf, format='PNG')
    atomic_write_bytes(path, buf.getvalue())


@HOOKS.register_module()
class CityscapesExportHook(Hook):
    """Writes every test prediction as a labelIds PNG named for the evaluation servers."""

    priority = 'LOW'

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        # every rank writes the samples it predicted
        for sample in outputs:
            pred = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
            rel = sample.metainfo.get('rel_path') or osp.basename(sample.img_path)
            write_label_ids(pred, osp.join(self.out_dir,
                                           export_name(sample.condition, rel)))

    def after_test_epoch(self, runner, metrics=None) -> None:
        if is_main_process():
            runner.logger.info(f'labelIds PNGs for the evaluation servers in {self.out_dir}')
