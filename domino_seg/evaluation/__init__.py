from domino_seg.evaluation.metrics import ConditionIoUMetric

__all__ = ['ConditionIoUMetric']
