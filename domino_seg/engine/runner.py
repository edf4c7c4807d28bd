"""mmengine's Runner, loading domino-seg's own checkpoints with the unpickling they need."""
from __future__ import annotations

from domino_seg.compat import trusted_checkpoint_loading  # (before mmseg)
from mmengine.runner import Runner
from mmseg.registry import RUNNERS


@RUNNERS.register_module()
class DominoRunner(Runner):
    """Identical to mmengine's Runner except that ``load_from``/``resume`` checkpoints, which
    domino-seg wrote, may contain pickled training state (see ``compat``)."""

    def load_checkpoint(self, filename, *args, **kwargs):
        with trusted_checkpoint_loading():
            return super().load_checkpoint(filename, *args, **kwargs)

    def resume(self, filename, *args, **kwargs):
        with trusted_checkpoint_loading():
            return super().resume(filename, *args, **kwargs)
