"""Importing domino_seg changes only what domino_seg/compat.py lists: mmseg's and mmengine's own
behaviours (registry lookups, a model build, init_model/inference_model, unreadable checkpoints,
init_dist, mmseg's warnings and log records) come out as without it (tests/mmseg_checks.py, run
each way in its own process), except the errors of unreadable checkpoints, which are clearer
and still what callers catch. Also: torchrun on CPU in domino-seg's runs (DominoRunner)."""
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


# the checks below read two processes that import mmseg (one domino_seg): slow
@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
    """mode -> the outcomes of tests/mmseg_checks.py, both processes run at once."""
    runs = {}
    for mode in ('plain', 'domino'):
        out = tmp_path_factory.mktemp(mode)
        runs[mode] = out, subprocess.Popen(
            [sys.executable, str(ROOT / 'tests' / 'mmseg_checks.py'), mode, str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for mode, (out, process) in runs.items():
        output = process.communicate()[0]
        assert process.returncode == 0, output
        results[mode] = json.loads((out / 'outcomes.json').read_text())
    return results


def _same(outcomes, key):
    assert outcomes['domino'][key] == outcomes['plain'][key]


@pytest.mark.slow
def test_registry_lookups_are_upstreams(outcomes):
    _same(outcomes, 'registry')
    assert outcomes['domino']['registry']['DCN'] == ['ok', [False, None]]
    assert outcomes['domino']['registry']['ResNetV1c'] == ['ok', [True, 'ResNetV1c']]


@pytest.mark.slow
def test_a_model_builds_and_computes_as_without_the_import(outcomes):
    _same(outcomes, 'logits')
    _same(outcomes, 'build_dcn')  # mmcv's own error for an absent layer


@pytest.mark.slow
def test_init_model_and_inference_model_give_the_same_result(outcomes):
    _same(outcomes, 'inference')
    assert outcomes['domino']['inference'][0] == 'ok'


@pytest.mark.slow
def test_init_dist_asking_for_nccl_without_cuda_fails_as_upstream(outcomes):
    """(It started gloo when compat replaced mmengine's _init_dist_pytorch.)"""
    _same(outcomes, 'init_dist_nccl')
    assert outcomes['domino']['init_dist_nccl'][0] == 'error'
    assert outcomes['domino']['dist_initialized'] is False


@pytest.mark.slow
def test_mmseg_warnings_and_root_log_records_are_not_filtered(outcomes):
    _same(outcomes, 'warnings')
    _same(outcomes, 'root_records')
    assert '``build_loss`` would be deprecated soon' in outcomes['domino']['warnings']
    assert outcomes['domino']['root_filters_added'] == []
    # (the same filters, which the upstream modules imported in both processes add)
    assert sorted(outcomes['domino']['filters_added']) == \
        sorted(outcomes['plain']['filters_added'])


@pytest.mark.slow
def test_unreadable_checkpoints_are_still_what_callers_catch(outcomes):
    plain, domino = outcomes['plain']['load_errors'], outcomes['domino']['load_errors']
    assert set(domino) == set(plain) == {'empty', 'text', 'pickle', 'truncated'}
    for name in plain:
        assert plain[name][0] == domino[name][0] == 'error'
        raised, types = plain[name][1][0], domino[name][1]
        assert raised in types and 'CheckpointError' in types, (name, raised, types)
        assert domino[name][2].startswith('checkpoint '), domino[name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('dist_cfg,logged', [({}, True), ({'backend': 'gloo', 'timeout': 60},
                                                          False)])
def test_torchrun_on_cpu_joins_the_group_with_the_configured_backend(monkeypatch, dist_cfg,
                                                                    logged):
    """DominoRunner's launcher=pytorch without CUDA (one process here): gloo, said in a log
    line, only where dist_cfg names no backend."""
    from mmengine.logging import MMLogger

    from domino_seg.engine.runner import init_cpu_process_group
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    records, handler = [], logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        init_cpu_process_group(dist_cfg)
        assert torch.distributed.get_backend() == 'gloo'
        assert torch.distributed.get_world_size() == 1
    finally:
        logger.removeHandler(handler)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    said = 'launcher=pytorch without CUDA and no env_cfg.dist_cfg.backend: using gloo'
    assert records == ([said] if logged else [])
