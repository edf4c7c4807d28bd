"""DominoNorm: identity at init, the modulation formula, per-sample conditioning, the context."""
import copy
import threading

import pytest
import torch
import torch.nn as nn

from domino_seg.models import DominoNorm, domain_embedding_context

EMBED_DIM = 16
C = 6

# (norm, input shape): BN/GN channel-first, LN channel-last tokens and maps.
NORM_CASES = {
    'bn2d': (lambda: nn.BatchNorm2d(C), (3, C, 5, 4)),
    'bn1d': (lambda: nn.BatchNorm1d(C), (3, C, 7)),
    'bn_no_affine': (lambda: nn.BatchNorm2d(C, affine=False), (3, C, 5, 4)),
    'syncbn': (lambda: nn.SyncBatchNorm(C), (3, C, 5, 4)),
    'gn': (lambda: nn.GroupNorm(2, C), (3, C, 5, 4)),
    'ln_tokens': (lambda: nn.LayerNorm(C), (3, 10, C)),
    'ln_map': (lambda: nn.LayerNorm(C), (3, 5, 4, C)),
    'ln_no_affine': (lambda: nn.LayerNorm(C, elementwise_affine=False), (3, 10, C)),
}


def pretrained(norm):
    """Give the norm non-trivial affine parameters and running stats, like a trained one."""
    with torch.no_grad():
        for tensor in (*norm.parameters(), getattr(norm, 'running_mean', None)):
            if tensor is not None:
                tensor.normal_()
        if getattr(norm, 'running_var', None) is not None:
            norm.running_var.uniform_(0.5, 2)
    return norm


def randomize_mlp(layer):
    with torch.no_grad():
        for p in layer.mlp.parameters():
            p.normal_(std=0.5)


@pytest.mark.parametrize('case', NORM_CASES)
@pytest.mark.parametrize('train', [False, True])
def test_identity_at_init(case, train):
    torch.manual_seed(0)
    make_norm, shape = NORM_CASES[case]
    norm = pretrained(make_norm()).train(train)
    domino = DominoNorm(copy.deepcopy(norm), EMBED_DIM)
    x = torch.randn(shape)
    with domain_embedding_context(torch.randn(shape[0], EMBED_DIM)):
        out = domino(x)
    torch.testing.assert_close(out, norm(x), rtol=0, atol=1e-6)
    for name, buffer in norm.named_buffers():  # running stats updated identically in train mode
        torch.testing.assert_close(domino.wrapped.get_buffer(name), buffer, rtol=0, atol=1e-6)


def as_channels(t, x, channel_dim):
    """(B, C) or (C,) -> broadcastable against x along ``channel_dim``."""
    shape = [t.shape[0] if t.dim() == 2 else 1] + [1] * (x.dim() - 1)
    shape[channel_dim] = C
    return t.reshape(shape)


@pytest.mark.parametrize('case', NORM_CASES)
def test_modulates_scale_and_shift_per_sample(case):
    """y = x_hat * gamma0 * (1 + d_gamma(e_i)) + beta0 + d_beta(e_i) for sample i."""
    torch.manual_seed(0)
    make_norm, shape = NORM_CASES[case]
    layer = DominoNorm(pretrained(make_norm()), EMBED_DIM).eval()
    randomize_mlp(layer)
    x, embeddings = torch.randn(shape), torch.randn(shape[0], EMBED_DIM)
    with domain_embedding_context(embeddings):
        out = layer(x)

    unit_affine = copy.deepcopy(layer.wrapped)
    if unit_affine.weight is not None:
        nn.init.ones_(unit_affine.weight)
        nn.init.zeros_(unit_affine.bias)
    x_hat = unit_affine(x)
    gamma0 = layer.wrapped.weight if layer.wrapped.weight is not None else torch.ones(C)
    beta0 = layer.wrapped.bias if layer.wrapped.bias is not None else torch.zeros(C)
    d_gamma, d_beta = layer.mlp(embeddings).chunk(2, dim=1)
    dim = -1 if isinstance(layer.wrapped, nn.LayerNorm) else 1
    expected = (x_hat * as_channels(gamma0, x, dim) * (1 + as_channels(d_gamma, x, dim)) +
                as_channels(beta0, x, dim) + as_channels(d_beta, x, dim))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    with domain_embedding_context(embeddings[1:2]):  # sample 1 alone gives the same result
        torch.testing.assert_close(layer(x[1:2]), out[1:2], rtol=1e-5, atol=1e-6)


def by_formula(layer, x, embeddings):
    """The layer's output written out in torch ops, the wrapped norm and the modulation
    separate: what autograd differentiates as the reference."""
    dim = -1 if isinstance(layer.wrapped, nn.LayerNorm) else 1
    d_gamma, d_beta = layer.mlp(embeddings).chunk(2, dim=1)
    bias = layer.wrapped.bias
    beta0 = as_channels(bias if bias is not None else torch.zeros(C, dtype=x.dtype), x, dim)
    return ((layer.wrapped(x) - beta0) * (1 + as_channels(d_gamma, x, dim)) + beta0 +
            as_channels(d_beta, x, dim))


@pytest.mark.parametrize('case', NORM_CASES)
def test_training_gradients_equal_the_formula_differentiated_by_autograd(case):
    """In train mode (batch statistics), the gradients for the input, the norm's affine and
    the MLP equal autograd's through the formula written out, in float64, for every layout."""
    torch.manual_seed(0)
    make_norm, shape = NORM_CASES[case]
    layer = DominoNorm(pretrained(make_norm()), EMBED_DIM).double().train()
    randomize_mlp(layer)
    reference = copy.deepcopy(layer)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    embeddings = torch.randn(shape[0], EMBED_DIM, dtype=torch.float64)
    with domain_embedding_context(embeddings):
        out = layer(x)
    grad = torch.randn_like(out)
    out.backward(grad)

    expected = by_formula(reference, x_ref, embeddings)
    expected.backward(grad)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x.grad, x_ref.grad)
    for (name, param), ref in zip(layer.named_parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, ref.grad, msg=name)


@pytest.mark.parametrize('norm', ['bn_train', 'bn_eval', 'gn'])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_the_fused_and_plain_modulations_agree(norm, memory_format):
    """With gradients the map is modulated in one function (ModulatedBatchNorm for BN with
    batch statistics, PerSampleAffine for BN with folded running statistics and for GN);
    without, by the norm then addcmul: the same values, and autograd's gradients of the
    formula, for a channels-last map receiving a channel-first gradient too."""
    torch.manual_seed(0)
    wrapped = nn.GroupNorm(2, C) if norm == 'gn' else nn.BatchNorm2d(C)
    layer = DominoNorm(pretrained(wrapped), EMBED_DIM).train(norm == 'bn_train')
    randomize_mlp(layer)
    reference = copy.deepcopy(layer)
    x = torch.randn(3, C, 5, 4).to(memory_format=memory_format).requires_grad_()
    x_ref = x.detach().contiguous().requires_grad_()
    embeddings = torch.randn(3, EMBED_DIM)
    grad = torch.randn(3, C, 5, 4)
    with domain_embedding_context(embeddings):
        with torch.no_grad():
            plain = copy.deepcopy(layer)(x)
        out = layer(x)
    expected = by_formula(reference, x_ref, embeddings)
    fused = 'ModulatedBatchNorm' if norm == 'bn_train' else 'PerSampleAffine'
    assert type(out.grad_fn).__name__ == fused + 'Backward'
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(plain, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    for (name, param), ref in zip(layer.named_parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, ref.grad, rtol=1e-4, atol=1e-5, msg=name)


BATCH_STATISTICS_CASES = {
    'bn2d': (lambda: nn.BatchNorm2d(C), (3, C, 5, 4), True),
    'channels_last': (lambda: nn.BatchNorm2d(C), (3, C, 5, 4), True),
    'cumulative_average': (lambda: nn.BatchNorm2d(C, momentum=None), (3, C, 5, 4), True),
    'no_affine': (lambda: nn.BatchNorm2d(C, affine=False), (3, C, 5, 4), True),
    'frozen_affine': (lambda: nn.BatchNorm2d(C).requires_grad_(False), (3, C, 5, 4), True),
    'input_without_grad': (lambda: nn.BatchNorm2d(C), (3, C, 5, 4), True),
    'no_running_stats': (lambda: nn.BatchNorm2d(C, track_running_stats=False), (3, C, 5, 4),
                         True),
    'eval_no_running_stats': (lambda: nn.BatchNorm2d(C, track_running_stats=False),
                              (3, C, 5, 4), False),
}


@pytest.mark.parametrize('case', BATCH_STATISTICS_CASES)
def test_batch_norm_with_batch_statistics_is_modulated_in_one_function(case):
    """BN normalising with batch statistics and Domino's modulation run as one
    ModulatedBatchNorm: outputs, gradients of the input, the norm's affine and the MLP, the
    running statistics and num_batches_tracked over three steps all as BN then the modulation
    written out (float64)."""
    torch.manual_seed(0)
    make_norm, shape, train = BATCH_STATISTICS_CASES[case]
    layer = DominoNorm(pretrained(make_norm()), EMBED_DIM).double().train(train)
    randomize_mlp(layer)
    reference = copy.deepcopy(layer)
    for step in range(3):
        x = torch.randn(shape, dtype=torch.float64) * 3 + step
        if case == 'channels_last':
            x = x.to(memory_format=torch.channels_last)
        x.requires_grad_(case != 'input_without_grad')
        x_ref = x.detach().contiguous().requires_grad_(x.requires_grad)
        embeddings = torch.randn(shape[0], EMBED_DIM, dtype=torch.float64)
        with domain_embedding_context(embeddings):
            out = layer(x)
        expected = by_formula(reference, x_ref, embeddings)
        assert type(out.grad_fn).__name__ == 'ModulatedBatchNormBackward'
        grad = torch.randn(shape, dtype=torch.float64)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(x.grad, x_ref.grad)
        for (name, param), ref in zip(layer.named_parameters(), reference.parameters()):
            torch.testing.assert_close(param.grad, ref.grad, msg=name)
        for (name, buffer), ref in zip(layer.named_buffers(), reference.buffers()):
            torch.testing.assert_close(buffer, ref, rtol=1e-12, atol=0, msg=name)
    if case == 'channels_last':
        assert x.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('case', ['syncbn', 'bn1d', 'bf16', 'no_grad'])
def test_batch_norm_keeps_two_steps_where_one_function_would_differ(case):
    """SyncBatchNorm (statistics over processes), BatchNorm1d, a half-precision map and no
    gradients leave ModulatedBatchNorm out."""
    torch.manual_seed(0)
    norm = dict(syncbn=nn.SyncBatchNorm(C), bn1d=nn.BatchNorm1d(C)).get(case, nn.BatchNorm2d(C))
    layer = DominoNorm(norm, EMBED_DIM).train()
    x = torch.randn(3, C, 5) if case == 'bn1d' else torch.randn(3, C, 2, 2)
    if case == 'bf16':
        x = x.bfloat16()
    with domain_embedding_context(torch.randn(x.shape[0], EMBED_DIM)):
        with torch.set_grad_enabled(case != 'no_grad'):
            out = layer(x)
    assert 'ModulatedBatchNorm' not in type(out.grad_fn).__name__


@pytest.mark.parametrize('shape, message', [((1, C, 1, 1), 'Expected more than 1 value per '
                                                             'channel'),
                                            ((3, C, 5), 'expected 4D input')])
def test_batch_norm_errors_are_batch_norms_own(shape, message):
    """A BatchNorm2d input it cannot normalise raises the error BatchNorm2d raises."""
    layer = DominoNorm(nn.BatchNorm2d(C), EMBED_DIM).train()
    with domain_embedding_context(torch.randn(shape[0], EMBED_DIM)):
        with pytest.raises(ValueError, match=message):
            layer(torch.randn(shape, requires_grad=True))


@pytest.mark.parametrize('grad', [True, False])
def test_a_half_precision_map_stays_half_precision(grad):
    """A bf16 map (float32 norm and MLP, as under autocast) comes out in bf16, as the plain
    norm's does, modulated by the float32 scale and shift."""
    torch.manual_seed(0)
    layer = DominoNorm(pretrained(nn.BatchNorm2d(C)), EMBED_DIM).train()
    randomize_mlp(layer)
    x = torch.randn(2, C, 5, 4)
    embeddings = torch.randn(2, EMBED_DIM)
    reference = copy.deepcopy(layer)
    x_half = x.bfloat16().requires_grad_(grad)
    with domain_embedding_context(embeddings), torch.set_grad_enabled(grad):
        full = reference(x.requires_grad_(grad))
        half = layer(x_half)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full.detach(), rtol=2e-2, atol=2e-2)
    if grad:
        upstream = torch.randn_like(full)
        full.backward(upstream)
        half.backward(upstream.bfloat16())
        assert x_half.grad.dtype == torch.bfloat16
        torch.testing.assert_close(x_half.grad.float(), x.grad, rtol=5e-2, atol=5e-2)
        for (name, param), ref in zip(layer.named_parameters(), reference.parameters()):
            assert param.grad.dtype == torch.float32, name
            torch.testing.assert_close(param.grad, ref.grad, rtol=5e-2, atol=5e-2, msg=name)


def test_gradients_reach_mlp():
    torch.manual_seed(0)
    layer = DominoNorm(pretrained(nn.BatchNorm2d(C)), EMBED_DIM)
    with domain_embedding_context(torch.randn(3, EMBED_DIM)):
        (layer(torch.randn(3, C, 4, 4)) * torch.randn(3, C, 4, 4)).sum().backward()
    for name, param in layer.mlp.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert layer.mlp[-1].weight.grad.abs().sum() > 0


def test_mlp_config():
    layer = DominoNorm(nn.LayerNorm(C), EMBED_DIM, mlp=dict(hidden=5, layers=3, act='SiLU'))
    assert [type(m) for m in layer.mlp] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    assert layer.mlp[0].in_features == EMBED_DIM and layer.mlp[-1].out_features == 2 * C
    assert layer.mlp[-1].weight.abs().sum() == 0 and layer.mlp[-1].bias is None
    single = DominoNorm(nn.LayerNorm(C), EMBED_DIM, mlp=dict(layers=1))
    assert len(single.mlp) == 1 and single.mlp[0].in_features == EMBED_DIM
    with pytest.raises(ValueError, match='activation'):
        DominoNorm(nn.LayerNorm(C), EMBED_DIM, mlp=dict(act='NoSuchAct'))
    with pytest.raises(TypeError, match='InstanceNorm2d'):
        DominoNorm(nn.InstanceNorm2d(C), EMBED_DIM)


def test_errors_without_or_with_wrong_embeddings():
    layer = DominoNorm(nn.BatchNorm2d(C), EMBED_DIM).eval()
    x = torch.randn(2, C, 3, 3)
    with pytest.raises(RuntimeError, match='domain_embedding_context'):
        layer(x)
    with domain_embedding_context(torch.randn(3, EMBED_DIM)), pytest.raises(ValueError,
                                                                             match='batch of 2'):
        layer(x)
    with domain_embedding_context(torch.randn(2, EMBED_DIM + 1)), pytest.raises(ValueError):
        layer(x)
    with pytest.raises(ValueError, match='batch, embed_dim'):
        with domain_embedding_context(torch.randn(EMBED_DIM)):
            pass


def test_context_is_restored_after_nesting_and_errors():
    layer = DominoNorm(nn.LayerNorm(C), EMBED_DIM)
    randomize_mlp(layer)
    x, outer, inner = torch.randn(1, 4, C), torch.randn(1, EMBED_DIM), torch.randn(1, EMBED_DIM)
    with domain_embedding_context(outer):
        expected = layer(x)
        with pytest.raises(KeyError):
            with domain_embedding_context(inner):
                raise KeyError('boom')
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match='without a domain embedding'):
        layer(x)


def test_threads_do_not_share_embeddings():
    torch.manual_seed(0)
    layer = DominoNorm(nn.LayerNorm(C), EMBED_DIM)
    randomize_mlp(layer)
    x = torch.randn(1, 4, C)
    embeddings = [torch.randn(1, EMBED_DIM) for _ in range(2)]
    with torch.no_grad():
        expected = []
        for e in embeddings:
            with domain_embedding_context(e):
                expected.append(layer(x))
    both_inside = threading.Barrier(2)
    results, errors = [None, None], []

    def run(i):
        try:
            with pytest.raises(RuntimeError):  # a new thread starts with no embedding set
                layer(x)
            with domain_embedding_context(embeddings[i]), torch.no_grad():
                both_inside.wait(timeout=10)  # both contexts are active at the same time
                results[i] = layer(x)
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, )) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for result, want in zip(results, expected):
        torch.testing.assert_close(result, want, rtol=0, atol=0)
    assert not torch.equal(expected[0], expected[1])


def test_building_draws_from_its_generator_only():
    """A Domino layer's MLP comes from the generator it is given (default: one derived from
    torch's seed), so building it leaves the global stream as it was."""
    torch.manual_seed(0)
    state = torch.get_rng_state()
    layers = [DominoNorm(nn.LayerNorm(C), EMBED_DIM, mlp=dict(layers=3),
                         generator=torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    assert torch.equal(torch.get_rng_state(), state)
    weights = [layer.mlp[0].weight for layer in layers]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    assert torch.equal(DominoNorm(nn.LayerNorm(C), EMBED_DIM).mlp[0].weight,
                       DominoNorm(nn.LayerNorm(C), EMBED_DIM).mlp[0].weight)
    assert torch.equal(torch.get_rng_state(), state)
    layers[2].reset_parameters(torch.Generator().manual_seed(1))
    assert torch.equal(layers[2].mlp[0].weight, weights[0])
    assert not layers[2].mlp[-1].weight.any()


@pytest.mark.parametrize('train', [False, True])
def test_timm_batchnorm_act_is_modulated_before_its_activation(train):
    """timm's BatchNormAct2d (BN then ReLU6, EfficientNet's norms): identity at init, and
    the activation applies to the modulated BN output (eval mode used to drop it)."""
    from timm.layers import BatchNormAct2d
    torch.manual_seed(0)
    norm_act = pretrained(BatchNormAct2d(C, act_layer=nn.ReLU6)).train(train)
    x, embeddings = torch.randn(3, C, 5, 4) * 4, torch.randn(3, EMBED_DIM)
    layer = DominoNorm(copy.deepcopy(norm_act), EMBED_DIM)
    with domain_embedding_context(embeddings):
        torch.testing.assert_close(layer(x), copy.deepcopy(norm_act)(x), rtol=0, atol=1e-6)

    randomize_mlp(layer)
    plain = DominoNorm(nn.BatchNorm2d(C).train(train), EMBED_DIM)
    plain.load_state_dict(layer.state_dict())
    with domain_embedding_context(embeddings):
        out, expected = layer(x), nn.functional.relu6(plain(x))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.min() == 0 and out.max() == 6  # the activation is there


def test_timm_sync_batchnorm_act_normalises_through_syncbatchnorm(monkeypatch):
    """timm's SyncBatchNormAct (what multi-process runs make of BatchNormAct2d, see
    DominoRunner.wrap_model) inside a Domino layer normalises through SyncBatchNorm's forward,
    which gathers the statistics over the processes, then applies its activation."""
    from timm.layers import BatchNormAct2d, SyncBatchNormAct, convert_sync_batchnorm
    calls = []
    sync_forward = nn.SyncBatchNorm.forward
    monkeypatch.setattr(nn.SyncBatchNorm, 'forward',
                        lambda self, x: calls.append(type(self)) or sync_forward(self, x))
    torch.manual_seed(0)
    plain = DominoNorm(BatchNormAct2d(C, act_layer=nn.ReLU6), EMBED_DIM).train()
    randomize_mlp(plain)
    layer = convert_sync_batchnorm(copy.deepcopy(plain))
    x, embeddings = torch.randn(3, C, 5, 4, requires_grad=True), torch.randn(3, EMBED_DIM)
    with domain_embedding_context(embeddings):
        out = layer(x)
        assert calls == [SyncBatchNormAct]
        # one process: SyncBatchNorm normalises as BatchNorm does; ReLU6 follows as before
        torch.testing.assert_close(out, plain(x))
    assert out.min() == 0
