"""The tools' entry point (``domino_seg.apis.run.run_hydra``): what it sets up around a job."""
import gc
import sys

from domino_seg.apis import run


def test_a_job_starts_with_the_objects_alive_before_it_frozen(monkeypatch):
    """mmengine collects garbage for every dataset it builds (a quarter second each over the
    imported libraries): a tool's job starts with everything alive before it out of the
    collector's reach, so those collections skip it."""
    monkeypatch.setattr(sys, 'argv', ['tools/train.py'])
    gc.unfreeze()
    alive = len(gc.get_objects())
    frozen = []
    try:
        run.run_hydra(lambda: frozen.append(gc.get_freeze_count()))
        assert frozen and frozen[0] >= 0.9 * alive
        assert len(gc.get_objects()) < 0.1 * alive  # what a collection now walks
    finally:
        gc.unfreeze()
