"""Mixed precision: the amp key maps to mmengine's AmpOptimWrapper (with the NaN guard) on a
GPU, falls back to float32 with a warning without one, and Domino's modulation stays float32
under autocast."""
import pytest
import torch
import torch.nn as nn

from domino_seg import compose, config, to_mmengine
from domino_seg.engine.nan_guard import (
    NonFiniteGuard,
    NonFiniteGuardAmpOptimWrapper,
    NonFiniteGuardOptimWrapper,
)
from domino_seg.errors import ConfigError
from domino_seg.models.domain_context import domain_embedding_context
from domino_seg.models.domino_norm import DominoNorm


@pytest.mark.parametrize('amp, dtype', [('bf16', 'bfloat16'), ('fp16', 'float16')])
def test_amp_maps_to_mmengines_amp_wrapper_on_a_gpu(amp, dtype, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert config.precision(amp) == dict(type='NonFiniteGuardAmpOptimWrapper', dtype=dtype,
                                          loss_scale='dynamic')


@pytest.mark.parametrize('amp', ['fp32', False])
def test_fp32_is_the_plain_guarded_wrapper(amp):
    assert config.precision(amp) == dict(type='NonFiniteGuardOptimWrapper')


def test_without_a_gpu_amp_warns_and_trains_in_float32(monkeypatch):
    import mmengine.logging
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log', lambda msg, **kw: logged.append(msg))
    mm = to_mmengine(compose(['amp=bf16']))
    assert mm.optim_wrapper.type == 'NonFiniteGuardOptimWrapper'
    assert mm.optim_wrapper.nan_policy == 'stop'
    assert any(m.startswith('amp=bf16: mixed precision needs a GPU') for m in logged)


def test_an_unknown_precision_is_an_error():
    with pytest.raises(ConfigError, match=r"amp='int8': choose fp32 \(or false\), bf16 or fp16"):
        config.precision('int8')


def test_the_gpu_presets_use_bf16():
    assert compose(['+exp=finetune_acdc']).amp == 'bf16'
    assert compose(['+exp=domino_acdc']).amp == 'bf16'


def test_the_amp_wrapper_keeps_the_guard():
    assert issubclass(NonFiniteGuardAmpOptimWrapper, NonFiniteGuard)
    assert issubclass(NonFiniteGuardOptimWrapper, NonFiniteGuard)


def test_domino_modulation_is_float32_under_bf16_autocast(pretrained_norms):
    """Under CPU bf16 autocast the Domino MLP runs in float32, so a small modulation (1e-3 of
    the scale, below bf16's resolution around 1) gives exactly the float32 output."""
    torch.manual_seed(0)
    norm = DominoNorm(pretrained_norms(nn.LayerNorm(8)), embed_dim=4).eval()
    with torch.no_grad():
        norm.mlp[-1].weight.normal_(std=1e-3)
    x, emb = torch.randn(2, 5, 8), torch.randn(2, 4)
    with domain_embedding_context(emb):
        reference = norm(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = norm(x)
            modulation = norm.mlp(emb)
        with torch.no_grad():
            norm.mlp[-1].weight.zero_()
        unmodulated = norm(x)
    assert modulation.dtype == torch.bfloat16  # (autocast would have run it in bf16)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference, atol=0, rtol=0)
    assert not torch.equal(reference, unmodulated)
