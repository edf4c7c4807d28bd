"""What tools/train.py and tools/test.py do, importable for tests and notebooks."""
from __future__ import annotations

import json
import os.path as osp
import sys
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from domino_seg.config import to_mmengine
from domino_seg.data.builder import check_data, ensure_synthetic, seen_conditions
from domino_seg.domain import builder as domain_builder
from domino_seg.errors import DominoSegError
from domino_seg.evaluation.report import format_table


def _runner(cfg: DictConfig, train: bool):
    """Check data and weights (fast, clear errors), then build the Runner and record the
    resolved config in the work dir."""
    from domino_seg.engine.runner import DominoRunner
    ensure_synthetic(cfg.data)
    check_data(cfg.data, train=train)
    domain_builder.check_weights(cfg.domain)
    runner = DominoRunner.from_cfg(to_mmengine(cfg))
    OmegaConf.save(cfg, osp.join(cfg.work_dir, 'config.yaml'), resolve=True)
    return runner


def _final_report(cfg: DictConfig, title: str) -> dict:
    path = osp.join(cfg.work_dir, 'metrics.json')
    with open(path) as f:
        report = json.load(f)
    print(f'\n{title} ({path}):\n' + format_table(report, seen_conditions(cfg.data)), flush=True)
    return report


def train(cfg: DictConfig) -> dict:
    """Train, evaluating every ``schedule.val_interval`` iterations and at the end; returns
    the final report (also in ``<work_dir>/metrics.json``)."""
    _runner(cfg, train=True).train()
    return _final_report(cfg, 'Final evaluation')


def test(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` on every condition of ``data.eval_conditions``."""
    if not osp.isfile(cfg.checkpoint):
        raise DominoSegError(f'checkpoint={cfg.checkpoint!r} is not a file; pass the .pth that '
                             'tools/train.py wrote (see its work dir).')
    _runner(cfg, train=False).test()
    return _final_report(cfg, 'Test results')


def run_cli(job: Callable[[], object]) -> None:
    """Run a tool's job; a DominoSegError becomes one clear paragraph and exit status 2."""
    try:
        job()
    except DominoSegError as err:
        print(f'\nerror: {err}', file=sys.stderr, flush=True)
        sys.exit(2)
