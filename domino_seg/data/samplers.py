"""Samplers: training draws from several sources with chosen probabilities; evaluation
batches never mix sub-datasets.

mmseg's test-time preprocessor needs every image of a batch to have one size, and Cityscapes
(2048x1024) and ACDC (1920x1080) differ. Grouping batches by sub-dataset of the evaluation
ConcatDataset keeps any test batch size valid without padding, which would change predictions
near the border and so make the numbers depend on the batch size.
"""
from __future__ import annotations

import bisect
from typing import Iterator, Optional, Sequence

import torch
from mmengine.dataset import ConcatDataset, InfiniteSampler
from mmseg.registry import DATA_SAMPLERS
from torch.utils.data import BatchSampler, Sampler


@DATA_SAMPLERS.register_module()
class SourceWeightedSampler(InfiniteSampler):
    """mmengine's InfiniteSampler over a ConcatDataset of training sources, drawing source
    ``i`` with probability ``weights[i] / sum(weights)`` (samples of a source uniformly, with
    replacement). ``weights=None`` is the plain shuffle, i.e. sources in proportion to their
    size. Seeding, rank slicing and resume replay are InfiniteSampler's."""

    def __init__(self, dataset: ConcatDataset, weights: Optional[Sequence[float]] = None,
                 seed: Optional[int] = None) -> None:
        self.sample_weights = None
        if weights is not None:
            sizes = [len(d) for d in dataset.datasets]
            if len(weights) != len(sizes):
                raise ValueError(f'{len(weights)} source weights for {len(sizes)} sources')
            self.sample_weights = torch.cat([torch.full((size,), weight / size,
                                                        dtype=torch.float64)
                                             for weight, size in zip(weights, sizes)])
        super().__init__(dataset, shuffle=True, seed=seed)

    # (mmengine 0.10.7's private generator, pinned: overriding it keeps InfiniteSampler's
    # rank slicing and resume replay, which its public __iter__ holds)
    def _infinite_indices(self) -> Iterator[int]:
        if self.sample_weights is None:
            yield from super()._infinite_indices()
            return
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        while True:
            yield from torch.multinomial(self.sample_weights, self.size, replacement=True,
                                         generator=generator).tolist()


@DATA_SAMPLERS.register_module()
class SubDatasetBatchSampler(BatchSampler):
    """Yields batches of ``batch_size`` indices that all come from one sub-dataset; the last
    batch of each sub-dataset may be smaller. Order within a sub-dataset is the sampler's.

    A sub-dataset whose images differ in size (``group_by_size``, e.g. Mapillary Vistas or a
    user's folders) is split further by each sample's ``size_group`` (its image size), as the
    test-time preprocessor needs one size per batch."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last)
        dataset = getattr(sampler, 'dataset', None)
        self.cumulative_sizes = (dataset.cumulative_sizes
                                 if isinstance(dataset, ConcatDataset) else [])
        self.size_groups = _size_groups(dataset)

    def _group(self, index: int):
        group = bisect.bisect_right(self.cumulative_sizes, index)
        if index in self.size_groups:
            return group, self.size_groups[index]
        return group

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


def _size_groups(dataset) -> dict:
    """index -> ``size_group`` for the samples of the (sub-)datasets that group by size."""
    if dataset is None:
        return {}
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    groups, offset = {}, 0
    for part in parts:
        if getattr(part, 'group_by_size', False):
            for i in range(len(part)):
                groups[offset + i] = tuple(part.get_data_info(i).get('size_group') or ())
        offset += len(part)
    return groups
