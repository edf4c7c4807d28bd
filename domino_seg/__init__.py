"""domino-seg: domain-aware fine-tuning of segmentation models under weather shift (Domino).

Importing the package applies the compatibility fixes (``compat``, whose docstring lists every
change an import makes) before mmseg and registers domino-seg's datasets, transforms, metrics,
hooks and models in mmseg's registries. It sets no warning or log filter: :func:`quiet` does.
"""
from domino_seg import compat  # noqa: I001  (its fixes come before mmseg's import)

compat.apply()

from domino_seg import data, domain, engine, evaluation, models  # noqa: E402, F401  (registration)
from domino_seg.apis.inference import Segmenter  # noqa: E402
from domino_seg.config import build_dataset, build_segmentor, compose, to_mmengine  # noqa: E402


def quiet() -> None:
    """Drop, for this process, the upstream warnings and log records that repeat domino-seg's
    own messages or concern code it does not use (``console.UPSTREAM_WARNINGS``,
    ``UPSTREAM_RECORDS``): the tools call it first; a script or notebook may."""
    from domino_seg.console import silence_upstream_warnings
    silence_upstream_warnings()


__all__ = ['compose', 'build_dataset', 'build_segmentor', 'to_mmengine', 'Segmenter', 'quiet']
__version__ = '0.1.0'
