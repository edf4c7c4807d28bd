"""domino-seg: domain-aware fine-tuning of segmentation models under weather shift (Domino).

Importing the package applies the compatibility fixes (``compat``) before mmseg and registers
domino-seg's datasets, transforms, metrics, hooks and models in mmseg's registries.
"""
from domino_seg import compat  # noqa: F401, I001  (must come first)
from domino_seg import data, domain, engine, evaluation, models  # noqa: F401  (registration)
from domino_seg.config import build_dataset, build_segmentor, compose, to_mmengine
from domino_seg.apis.inference import Segmenter

__all__ = ['compose', 'build_dataset', 'build_segmentor', 'to_mmengine', 'Segmenter']
__version__ = '0.1.0'
