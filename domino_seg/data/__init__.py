"""Datasets (real layouts), pipeline transforms and samplers; the synthetic benchmark lives in
``domino_seg.data.synthetic`` and writes the same layouts."""
from domino_seg.data.acdc import ACDCDataset
from domino_seg.data.cityscapes import DominoCityscapesDataset
from domino_seg.data.corruptions import ImageCorruption
from domino_seg.data.eval_sets import EvalSetDataset
from domino_seg.data.samplers import SubDatasetBatchSampler
from domino_seg.data.transforms import CheckSegLabels, MapLabels

__all__ = ['ACDCDataset', 'DominoCityscapesDataset', 'SubDatasetBatchSampler', 'CheckSegLabels',
           'ImageCorruption', 'EvalSetDataset', 'MapLabels']
