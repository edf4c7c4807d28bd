"""The tools' entry point (``domino_seg.apis.run.run_hydra``): what it sets up around a job."""
import sys

from domino_seg.apis import run


def test_the_process_is_prepared_before_the_job(monkeypatch):
    """engine/process.py's settings (malloc, gc) are made once, before the job runs."""
    monkeypatch.setattr(sys, 'argv', ['tools/train.py'])
    calls = []
    monkeypatch.setattr(run, 'prepare_process', lambda: calls.append('prepare'))
    run.run_hydra(lambda: calls.append('job'))
    assert calls == ['prepare', 'job']
