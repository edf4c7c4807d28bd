"""Pipeline transforms: label checks, generated-image labels and training-time weather
augmentation."""
from __future__ import annotations

import cv2
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from domino_seg.conditions import CITYSCAPES
from domino_seg.data.label_maps import lookup_table
from domino_seg.data.layouts import check_label_file, readable
from domino_seg.data.synthetic import RENDERABLE, SKY_DEPTH, read_cityscapes_depth, render_weather
from domino_seg.errors import ConfigError, DataError


@TRANSFORMS.register_module()
class LoadCheckedImage(LoadImageFromFile):
    """mmcv's LoadImageFromFile; an unreadable image is a DataError naming the file."""

    def transform(self, results: dict) -> dict:
        with readable(results['img_path'], 'image'):
            return super().transform(results)


@TRANSFORMS.register_module()
class LoadCheckedAnnotations(LoadAnnotations):
    """mmseg's LoadAnnotations; an unreadable, colour or 16-bit label map with ids above 255
    is a DataError naming the file."""

    def transform(self, results: dict) -> dict:
        with readable(results['seg_map_path'], 'label'):
            check_label_file(results['seg_map_path'])
            return super().transform(results)


@TRANSFORMS.register_module()
class MapLabels(BaseTransform):
    """Map the label ids of a dataset with classes of its own to Cityscapes trainIds with a
    lookup table, right after the label map is loaded (before CheckSegLabels, which then checks
    the mapped ids). ``table``: a name of :data:`~domino_seg.data.label_maps.LABEL_MAPS` (e.g.
    ``'mapillary_v1.2'``) or a mapping ``{id: trainId}``; ids it does not list become 255
    (ignore). An id the dataset does not have (e.g. a 124-class Vistas v2.0 label where v1.2
    was expected) is a DataError naming the file."""

    def __init__(self, table) -> None:
        self.table = table if isinstance(table, str) else dict(table)
        self.lut, self.num_ids, self.what = lookup_table(table)

    def transform(self, results: dict) -> dict:
        label = results['gt_seg_map']
        if label.size and int(label.max()) >= self.num_ids:
            ids = np.unique(label[label >= self.num_ids])[:10].tolist()
            raise DataError(
                f'label file {results.get("seg_map_path", "<label>")} holds ids {ids}, which '
                f'are not {self.what} (the ids the table {self.table!r} maps to trainIds). Use '
                'the labels of the dataset version the table is for (Mapillary Vistas: the v1.2 '
                'labels, <split>/labels or <split>/v1.2/labels, not v2.0/labels).')
        results['gt_seg_map'] = self.lut[label]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(table={self.table!r})'


@TRANSFORMS.register_module()
class MatchLabelToImage(BaseTransform):
    """Resize the label map of a sample flagged ``match_label_to_image`` (a generated image,
    whose generator may work at another resolution than its Cityscapes label) to the image
    with nearest neighbour, so ids stay ids. Other samples pass unchanged, so a size mismatch
    in a real dataset is still an error (CheckSegLabels)."""

    def transform(self, results: dict) -> dict:
        height, width = results['img'].shape[:2]
        label = results['gt_seg_map']
        if results.get('match_label_to_image') and label.shape[:2] != (height, width):
            results['gt_seg_map'] = cv2.resize(label, (width, height),
                                               interpolation=cv2.INTER_NEAREST)
        return results


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


def ground_plane_depth(height: int, width: int, horizon: float = 0.45) -> np.ndarray:
    """A flat-road depth prior (metres) for images without a disparity map: depth grows as
    rows approach the horizon; everything above it is far."""
    rows = np.arange(height, dtype=np.float32)[:, None] / height
    depth = 1.6 / np.maximum(rows - horizon, 1e-3) * 0.4
    depth[rows[:, 0] <= horizon] = SKY_DEPTH
    return np.broadcast_to(np.minimum(depth, SKY_DEPTH), (height, width)).copy()


@TRANSFORMS.register_module()
class SyntheticWeather(BaseTransform):
    """Training-time weather augmentation: with probability ``prob`` re-render a clear
    (Cityscapes) image in one of ``conditions`` with the synthetic weather renderers and relabel
    the sample's ``condition``, so domain-aware training sees labelled weather domains. Samples
    of other training sources (already foggy, at night, ...) pass unchanged.

    Depth comes from the sample's Cityscapes disparity map when the dataset has one
    (``disparity_path``), else from a ground-plane prior. Place it after LoadAnnotations (snow
    and wet roads use the labels) and before the DomainEmbeddingInputs step.
    """

    def __init__(self, conditions, prob: float = 0.5) -> None:
        # any condition the renderers know (which ones a data config allows: data/builder.py)
        unknown = [c for c in conditions if c not in RENDERABLE]
        if unknown or not conditions:
            raise ConfigError(f'data.train_weather has unknown condition(s) {unknown}; valid: '
                              f'{", ".join(RENDERABLE)}.')
        self.conditions = list(conditions)
        self.prob = prob

    def transform(self, results: dict) -> dict:
        if results.get('condition', CITYSCAPES) != CITYSCAPES:
            return results
        # numpy's global RNG is seeded per worker by mmengine: reproducible per seed
        if np.random.rand() >= self.prob:
            return results
        condition = self.conditions[np.random.randint(len(self.conditions))]
        rng = np.random.default_rng(np.random.randint(2 ** 31))
        image = results['img']
        if results.get('disparity_path'):
            depth = read_cityscapes_depth(results['disparity_path'])
        else:
            depth = ground_plane_depth(*image.shape[:2])
        rgb = np.ascontiguousarray(image[..., ::-1])
        rendered = render_weather(rgb, depth, condition, rng, label=results.get('gt_seg_map'))
        results['img'] = np.ascontiguousarray(rendered[..., ::-1])
        results['condition'] = condition
        return results
