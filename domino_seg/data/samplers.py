"""Evaluation batches that never mix sub-datasets.

mmseg's test-time preprocessor needs every image of a batch to have one size, and Cityscapes
(2048x1024) and ACDC (1920x1080) differ. Grouping batches by sub-dataset of the evaluation
ConcatDataset keeps any test batch size valid without padding, which would change predictions
near the border and so make the numbers depend on the batch size.
"""
from __future__ import annotations

import bisect
from typing import Iterator

from domino_seg import compat  # noqa: F401  (before mmseg)
from mmengine.dataset import ConcatDataset
from mmseg.registry import DATA_SAMPLERS
from torch.utils.data import BatchSampler, Sampler


@DATA_SAMPLERS.register_module()
class SubDatasetBatchSampler(BatchSampler):
    """Yields batches of ``batch_size`` indices that all come from one sub-dataset; the last
    batch of each sub-dataset may be smaller. Order within a sub-dataset is the sampler's."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last)
        dataset = getattr(sampler, 'dataset', None)
        self.cumulative_sizes = (dataset.cumulative_sizes
                                 if isinstance(dataset, ConcatDataset) else [])

    def _group(self, index: int) -> int:
        return bisect.bisect_right(self.cumulative_sizes, index)

    def __iter__(self) -> Iterator[list[int]]:
        buckets: dict[int, list[int]] = {}
        for index in self.sampler:
            bucket = buckets.setdefault(self._group(index), [])
            bucket.append(index)
            if len(bucket) == self.batch_size:
                yield bucket
                buckets[self._group(index)] = []
        if not self.drop_last:
            yield from (b for b in buckets.values() if b)

    def __len__(self) -> int:
        sizes: dict[int, int] = {}
        for index in self.sampler:
            sizes[self._group(index)] = sizes.get(self._group(index), 0) + 1
        if self.drop_last:
            return sum(n // self.batch_size for n in sizes.values())
        return sum(-(-n // self.batch_size) for n in sizes.values())
