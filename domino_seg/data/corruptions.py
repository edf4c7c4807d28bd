"""Corruption conditions: an evaluation split under ImageNet-C-style corruptions (the
``imagecorruptions`` package: 15 corruptions + 4 validation ones, severities 1-5), each
corruption and severity a condition ``<name>@<severity>`` of its own, for robustness where no
adverse-weather set is at hand. The corrupted pixels depend only on the image's path, the
corruption, the severity and ``data.corruption_seed``: every model compared sees the same."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from domino_seg.errors import ConfigError

CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
               'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
               'elastic_transform', 'pixelate', 'jpeg_compression', 'speckle_noise',
               'gaussian_blur', 'spatter', 'saturate')
SEVERITIES = range(1, 6)


def condition_name(corruption: str, severity: int) -> str:
    return f'{corruption}@{severity}'


def corruption_conditions(corruptions: Sequence[str], severities: Sequence[int]) -> list:
    """``[(condition, corruption, severity), ...]``, checked: names of CORRUPTIONS, severities
    1..5 (a ConfigError names the key and what it takes)."""
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise ConfigError(f'data.eval_corruptions: unknown {unknown}; choose from '
                          f'{", ".join(CORRUPTIONS)}.')
    bad = [s for s in severities if type(s) is not int or s not in SEVERITIES]
    if bad or (corruptions and not severities):
        raise ConfigError(f'data.corruption_severities={list(severities)}: give severities '
                          'in 1..5, e.g. [1,3,5].')
    return [(condition_name(c, s), c, s) for c in corruptions for s in severities]


@TRANSFORMS.register_module()
class ImageCorruption(BaseTransform):
    """Corrupt ``results['img']`` (BGR, as loaded) with ``corruption`` at ``severity`` and name
    the sample's condition after it. The corruption's random draws come from a seed of the
    image path (relative to the data root when known), so they repeat exactly; numpy's global
    random state, which imagecorruptions uses, is restored afterwards."""

    def __init__(self, corruption: str, severity: int, seed: int = 0) -> None:
        corruption_conditions([corruption], [severity])
        self.corruption, self.severity, self.seed = corruption, severity, seed

    def transform(self, results: dict) -> dict:
        from domino_seg.compat import import_imagecorruptions
        corrupt = import_imagecorruptions().corrupt
        name = results.get('rel_path') or results['img_path']
        digest = hashlib.sha256(f'{name}|{self.corruption}|{self.severity}|{self.seed}'.encode())
        state = np.random.get_state()
        try:
            np.random.seed(int.from_bytes(digest.digest()[:4], 'little'))
            rgb = corrupt(np.ascontiguousarray(results['img'][..., ::-1]),
                          severity=self.severity, corruption_name=self.corruption)
        finally:
            np.random.set_state(state)
        results['img'] = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., ::-1])
        results['condition'] = condition_name(self.corruption, self.severity)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(corruption={self.corruption!r}, '
                f'severity={self.severity}, seed={self.seed})')
