"""Pipeline transforms that guard against silently wrong labels."""
from __future__ import annotations

import numpy as np

from domino_seg import compat  # noqa: F401  (before mmseg)
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from domino_seg.errors import DataError


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Fail loudly, naming the file, when a label map holds ids outside ``0..num_classes-1``
    and ``ignore_index`` or differs in size from its image: such labels would otherwise be
    scored as wrong classes or crash deep inside the loss."""

    def __init__(self, num_classes: int = 19, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        label = results['gt_seg_map']
        path = results.get('seg_map_path', '<label>')
        bad = (label >= self.num_classes) & (label != self.ignore_index)
        if bad.any():
            ids = np.unique(label[bad])[:10].tolist()
            raise DataError(
                f'label file {path} holds ids {ids} outside 0..{self.num_classes - 1} and '
                f'{self.ignore_index}. Labels must be Cityscapes trainIds (*_labelTrainIds.png); '
                'make them with cityscapesscripts/preparation/createTrainIdLabelImgs.py.')
        height, width = results['ori_shape'][:2]
        if label.shape[:2] != (height, width):
            raise DataError(
                f'label file {path} is {label.shape[1]}x{label.shape[0]} but its image '
                f'{results.get("img_path")} is {width}x{height} (WxH); image and label must '
                'be the same size.')
        return results
