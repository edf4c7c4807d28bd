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
atomic), so concurrent dataloader workers never read a partial file; reads use
``np.load(allow_pickle=False)``.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from domino_seg.io import atomic_write_bytes


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

    def load(self, key: str) -> Optional[np.ndarray]:
        """The cached features, or None on a miss (an unreadable file counts as a miss)."""
        try:
            return np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def save(self, key: str, features: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(features, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f'{key}.npy'
