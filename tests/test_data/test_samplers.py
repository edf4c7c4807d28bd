"""Evaluation batches never cross sub-datasets, so any test batch size is valid."""
from mmengine.dataset import BaseDataset, ConcatDataset, DefaultSampler

from domino_seg.data.samplers import SubDatasetBatchSampler


class Sized(BaseDataset):
    def __init__(self, n):
        self.n = n
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(i=i) for i in range(self.n)]


def test_batches_stay_within_one_sub_dataset():
    concat = ConcatDataset([Sized(5), Sized(3), Sized(4)])
    sampler = SubDatasetBatchSampler(DefaultSampler(concat, shuffle=False), batch_size=2)
    batches = list(sampler)
    assert batches == [[0, 1], [2, 3], [5, 6], [8, 9], [10, 11], [4], [7]]
    assert len(sampler) == len(batches)
    assert sorted(i for b in batches for i in b) == list(range(12))


def test_plain_dataset_batches_like_torch():
    sampler = SubDatasetBatchSampler(DefaultSampler(Sized(5), shuffle=False), batch_size=2)
    assert list(sampler) == [[0, 1], [2, 3], [4]]
