from domino_seg.evaluation.export import CityscapesExportHook
from domino_seg.evaluation.metrics import ConditionIoUMetric

__all__ = ['CityscapesExportHook', 'ConditionIoUMetric']
