from domino_seg.engine.interrupt_hook import InterruptHook
from domino_seg.engine.logger_hook import FinalIterLoggerHook
from domino_seg.engine.metrics_json_hook import MetricsJsonHook
from domino_seg.engine.nan_guard import NonFiniteGuardOptimWrapper
from domino_seg.engine.progress_hook import EvalProgressHook
from domino_seg.engine.rng_state_hook import RngStateHook
from domino_seg.engine.runner import DominoRunner

__all__ = ['DominoRunner', 'EvalProgressHook', 'FinalIterLoggerHook', 'InterruptHook',
           'MetricsJsonHook', 'NonFiniteGuardOptimWrapper', 'RngStateHook']
