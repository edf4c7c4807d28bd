from domino_seg.engine.metrics_json_hook import MetricsJsonHook
from domino_seg.engine.runner import DominoRunner

__all__ = ['DominoRunner', 'MetricsJsonHook']
