"""On-disk cache of CLIP image features, so each image goes through CLIP once per model.

Layout: ``<root>/<identity hash>/<key[:2]>/<key>.npy`` plus ``<identity hash>/identity.json``
(what the folder holds, for humans). The key is a hash of the decoded image pixels, and the
folder is the generator identity (arch, model_cfg overrides, weights tag / file hash / seed), so
a changed image or model never meets a stale entry.

The cached value is the normalised CLIP image embedding, taken *before* the prompt bank, the mode
and the temperature apply: ``zero_shot``/``image`` embeddings are recomputed from it in
microseconds, so editing the bank or the temperature, or switching between the two modes,
reuses every entry and still always reflects the current settings. The key ignores the image
path, so a cache stays valid when the dataset moves.

Entries are written to a temp file in the same folder and renamed into place (``os.replace`` is
atomic), so concurrent processes (the ranks of a DDP run, the precompute tool) never read a
partial file; reads use ``np.load(allow_pickle=False)``. An entry of another shape than the
generator's features, with NaN/inf values or not of norm 1 (a damaged or foreign file) is a
miss, with a warning naming the file: it is recomputed and overwritten.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np
from mmengine.logging import print_log

from domino_seg.io import atomic_write_bytes

from .clip_generator import UNIT_NORM_TOLERANCE


class EmbeddingCache:
    """Image features of one generator identity, one ``.npy`` file per image."""

    def __init__(self, root: Union[str, Path], identity: dict):
        identity_json = json.dumps(identity, sort_keys=True)
        self.dir = Path(root) / hashlib.blake2b(identity_json.encode(), digest_size=8).hexdigest()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / 'identity.json').exists():
            atomic_write_bytes(self.dir / 'identity.json', identity_json.encode())

    @staticmethod
    def key(image: np.ndarray) -> str:
        """Hash of the decoded pixels (shape and dtype included)."""
        digest = hashlib.blake2b(f'{image.shape}{image.dtype}'.encode(), digest_size=16)
        digest.update(np.ascontiguousarray(image))
        return digest.hexdigest()

    def load(self, key: str, dim: Optional[int] = None) -> Optional[np.ndarray]:
        """The cached features, or None on a miss. An unreadable file counts as a miss, and so
        does one that holds NaN/inf or (with ``dim``) is not a normalised vector of ``dim``
        values, as the generator's features are."""
        path = self._path(key)
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if dim is not None and features.shape != (dim,):
            problem = f'shape {features.shape} instead of ({dim},)'
        elif not np.issubdtype(features.dtype, np.floating) or not np.isfinite(features).all():
            problem = 'non-finite (NaN/inf) or non-float values'
        elif dim is not None and abs((norm := np.linalg.norm(features.astype(np.float64))) - 1) \
                > UNIT_NORM_TOLERANCE:
            problem = f'norm {norm:.4g} instead of 1'
        else:
            return features
        print_log(f'embedding cache file {path} is corrupt ({problem}); recomputing it.',
                  logger='current', level=logging.WARNING)
        return None

    def save(self, key: str, features: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(features, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f'{key}.npy'
