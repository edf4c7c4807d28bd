from domino_seg.evaluation.metrics import ConditionIoUMetric
from domino_seg.evaluation.submission import CityscapesSubmissionHook

__all__ = ['CityscapesSubmissionHook', 'ConditionIoUMetric']
