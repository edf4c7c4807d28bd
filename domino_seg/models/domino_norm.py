"""Domino normalization: a norm layer whose scale and shift depend on the sample's domain.

Domino (Kaplan et al. 2024, "Domain-Aware Fine-Tuning of Foundation Models") wraps an existing
norm layer and modulates its affine transform with a domain embedding ``e`` (e.g. a 512-d CLIP
vector)::

    y = x_hat * gamma0 * (1 + d_gamma(e)) + beta0 + d_beta(e)

``x_hat * gamma0 + beta0`` is what the wrapped norm already computes, so the layer evaluates
``base = wrapped(x)`` and returns ``base * (1 + d_gamma) + d_beta - beta0 * d_gamma`` in one
pass over the map (a per-sample affine; see ``DominoNorm._per_sample_affine``). BatchNorm
does both in its own passes: with batch statistics as :class:`ModulatedBatchNorm` (training),
with running ones, being affine, folded with Domino into one per-sample scale and shift. The
wrapped norm keeps its pretrained weights and running statistics, and the MLP predicting
``(d_gamma, d_beta)`` has a zero last layer, so a freshly converted model computes what the
original did (up to float32 rounding where BN is folded or fused).

The MLP is ``embed_dim -> hidden -> ... -> 2 * C``. Its last layer has no bias: a constant
``d_gamma``/``d_beta`` would duplicate the wrapped norm's own ``gamma0``/``beta0``. Built on its
own (``DominoNorm(norm, embed_dim)``, ``convert_to_domino``) each layer owns its whole MLP,
about ``embed_dim * hidden + hidden * 2 * C`` parameters. ``DomainAwareEncoderDecoder``
instead shares all but the last MLP layer across the model, which is what keeps Domino under
1% of a small model's parameters (see its docstring).

The MLPs draw their initial values from their own generator (:func:`domino_generator`), never
from torch's global ones: a Domino model and the baseline built after the same ``seed`` draw
the same initial values for every layer they share, and the same random numbers after.

timm's BatchNorm + activation layers (``BatchNormAct2d``: BN, then dropout and e.g. ReLU6, as
in its EfficientNets) are conditioned between the two: the BN part is modulated as above and
the layer's own dropout and activation follow.

The layer reads the embeddings from :func:`domain_embedding_context`.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

from .domain_context import current_domain_embeddings

# _BatchNorm covers BatchNorm1d/2d/3d and SyncBatchNorm, but not InstanceNorm.
NORM_TYPES = (_BatchNorm, nn.GroupNorm, nn.LayerNorm)
# the Domino MLP's defaults, also those of the configs (configs/domino/_base.yaml)
DEFAULT_MLP = dict(hidden=4, layers=2, act='GELU')
# the torch.nn activations the MLP takes (``act``): elementwise, built without arguments
ACTIVATIONS = ('GELU', 'ReLU', 'SiLU', 'Mish', 'ELU', 'LeakyReLU', 'Tanh', 'Sigmoid',
               'Softplus', 'Hardswish')


# tells Domino's generator apart from torch's global one seeded with the same seed
DOMINO_STREAM = 0xD0319


def domino_generator(seed: Optional[int] = None) -> torch.Generator:
    """The CPU generator Domino's MLPs are initialised from, derived from ``seed``; by default
    from ``torch.initial_seed()``, the run's ``seed`` (mmengine's Runner seeds torch right
    before it builds the model). A stream of its own, so the global one (the baseline's
    weights, dropout, ...) stays as in a run without Domino."""
    seed = torch.initial_seed() if seed is None else seed
    state = np.random.SeedSequence(seed, spawn_key=(DOMINO_STREAM, )).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """``nn.Linear``'s default initialisation (kaiming-uniform weight, bias uniform in
    +-1/sqrt(fan_in)), drawn on the CPU from ``generator``: the values depend neither on torch's
    global generators nor on the layer's device."""
    weight = torch.empty(layer.weight.shape)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if layer.bias is not None:
            bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0
            layer.bias.copy_(torch.empty(layer.bias.shape).uniform_(-bound, bound,
                                                                    generator=generator))


def _empty_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """An uninitialised CPU ``nn.Linear``, made without drawing from the global generator (as
    ``nn.Linear(...)`` would, for values replaced right after)."""
    return nn.Linear(in_features, out_features, bias=bias, device='meta').to_empty(device='cpu')


def init_linears(layers, generator: torch.Generator) -> None:
    """:func:`init_linear` of each ``nn.Linear`` of ``layers`` (a module's children), in order."""
    for layer in layers:
        if isinstance(layer, nn.Linear):
            init_linear(layer, generator)


def build_domain_encoder(embed_dim: int, hidden: int, layers: int, act: str,
                         generator: Optional[torch.Generator] = None) -> nn.Sequential:
    """The Domino MLP without its last layer: ``layers - 1`` (Linear, ``nn.<act>``) pairs
    ``embed_dim -> hidden -> ... -> hidden``; empty (the identity) for ``layers=1``. Initialised
    from ``generator`` (default: :func:`domino_generator`), on the CPU."""
    if layers < 1 or hidden < 1:
        raise ValueError(f'the Domino MLP needs layers >= 1 and hidden >= 1, got '
                         f'layers={layers}, hidden={hidden}')
    if act not in ACTIVATIONS:
        raise ValueError(f'act must name a torch.nn activation, one of {", ".join(ACTIVATIONS)}; '
                         f'got {act!r}')
    dims = [embed_dim] + [hidden] * (layers - 1)
    encoder = nn.Sequential(*(module for d_in, d_out in zip(dims[:-1], dims[1:])
                              for module in (_empty_linear(d_in, d_out), getattr(nn, act)())))
    init_linears(encoder, domino_generator() if generator is None else generator)
    return encoder


def build_mlp(in_dim: int, out_dim: int, hidden: int, layers: int, act: str,
              generator: Optional[torch.Generator] = None) -> nn.Sequential:
    """``layers`` Linear layers ``in_dim -> hidden -> ... -> out_dim``, the last without bias
    and zero; the others initialised from ``generator`` (default: :func:`domino_generator`)."""
    encoder = build_domain_encoder(in_dim, hidden, layers, act, generator)
    last = _empty_linear(hidden if layers > 1 else in_dim, out_dim, bias=False)
    nn.init.zeros_(last.weight)
    return nn.Sequential(*encoder, last)


def _num_channels(norm: nn.Module) -> int:
    if isinstance(norm, nn.GroupNorm):
        return norm.num_channels
    if isinstance(norm, nn.LayerNorm):
        if len(norm.normalized_shape) != 1:
            raise ValueError('Domino supports LayerNorm over the channel dimension only, got '
                             f'normalized_shape={tuple(norm.normalized_shape)}')
        return norm.normalized_shape[0]
    return norm.num_features


class DominoNorm(nn.Module):
    """Wraps ``norm`` (BN/SyncBN/GN/LN) and conditions its scale and shift on the domain.

    BN and GN act on channel-first inputs (B, C, ...); LN on channel-last tokens (B, N, C) or
    (B, H, W, C). Sample ``i`` is modulated by row ``i`` of the active domain embeddings.

    Args:
        norm: the norm layer to wrap; its parameters and buffers are kept as they are.
        embed_dim: length of the embeddings set by ``domain_embedding_context``.
        mlp: overrides of ``DEFAULT_MLP``: ``hidden`` width, number of Linear ``layers`` and
            ``act``, the name of a ``torch.nn`` activation.
        generator: the MLP's initial values come from it (default: :func:`domino_generator`).
    """

    def __init__(self, norm: nn.Module, embed_dim: int, mlp: Optional[dict] = None,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if not isinstance(norm, NORM_TYPES):
            raise TypeError('Domino wraps BatchNorm, SyncBatchNorm, GroupNorm or LayerNorm, '
                            f'got {type(norm).__name__}')
        # Not named "norm": optimizer paramwise_cfg custom_keys={'norm': ...} (e.g. mmseg's DPT
        # configs) would then also match the heads' BN parameters and change their weight decay.
        self.wrapped = norm
        self.embed_dim = embed_dim
        self.num_channels = _num_channels(norm)
        self.channel_dim = -1 if isinstance(norm, nn.LayerNorm) else 1
        # timm's BatchNormAct2d: BN, then its own dropout and activation
        self.norm_act = isinstance(norm, _BatchNorm) and hasattr(norm, 'act')
        self.mlp = build_mlp(embed_dim, 2 * self.num_channels, **{**DEFAULT_MLP, **(mlp or {})},
                             generator=generator)
        tensors = (*norm.parameters(), *norm.buffers())
        reference = next((t for t in tensors if t.is_floating_point()), None)
        if reference is not None:  # converting a model already on GPU / in half precision
            self.mlp.to(device=reference.device, dtype=reference.dtype)
        self.register_load_state_dict_pre_hook(_accept_unwrapped_norm_keys)

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Re-initialise the MLP only, from ``generator`` (default: :func:`domino_generator`),
        its last layer to zero: the layer is the wrapped norm."""
        init_linears(self.mlp[:-1], domino_generator() if generator is None else generator)
        nn.init.zeros_(self.mlp[-1].weight)

    def forward(self, x: Tensor) -> Tensor:
        embeddings = current_domain_embeddings()
        if embeddings is None:
            raise RuntimeError(
                'Domino layer called without a domain embedding: run the model inside '
                'domino_seg.models.domain_embedding_context(embeddings) (DomainAwareEncoderDecoder '
                "does this from each sample's metainfo['domain_embedding']).")
        if embeddings.shape != (x.shape[0], self.embed_dim):
            raise ValueError(
                f'Domino layer expects one {self.embed_dim}-d domain embedding per sample of the '
                f'batch of {x.shape[0]}, got embeddings of shape {tuple(embeddings.shape)}.')
        # the per-sample scale and shift in float32 under mixed precision (amp=bf16|fp16): a
        # half-precision 1 + d_scale would round away small modulations
        autocast = torch.is_autocast_enabled(x.device.type)
        with torch.autocast(device_type=x.device.type, enabled=False) if autocast else \
                nullcontext():
            modulation = self.mlp(embeddings.to(self.mlp[-1].weight.dtype))
        out = (self._modulated_batch_norm(x, modulation) if self._fuses_batch_norm(x) else
               self._norm_then_modulation(x, modulation))
        return self.wrapped.act(self.wrapped.drop(out)) if self.norm_act else out

    def _norm_then_modulation(self, x: Tensor, modulation: Tensor) -> Tensor:
        """The layer's output (before timm's activation) as the wrapped norm, then the
        per-sample affine; eval-mode BN folded into it."""
        shape = [1] * x.dim()
        shape[self.channel_dim] = self.num_channels
        d_scale, d_shift = (t.reshape(x.shape[0], *shape[1:]) for t in modulation.chunk(2, dim=1))
        beta0 = getattr(self.wrapped, 'bias', None)  # None when the norm has no affine shift
        if beta0 is not None:
            d_shift = d_shift - beta0.view(shape) * d_scale
        if self._uses_running_stats():
            # eval-mode BN is affine: fold it and Domino into one per-sample scale and shift
            scale, shift = self._running_affine(shape)
            return self._per_sample_affine(x, scale * (1 + d_scale),
                                           shift * (1 + d_scale) + d_shift)
        # one pass over the feature map: base * (1 + d_scale) + d_shift - beta0 * d_scale
        base = _torch_norm_forward(self.wrapped)(self.wrapped, x) if self.norm_act else \
            self.wrapped(x)
        return self._per_sample_affine(base, 1 + d_scale, d_shift)

    def _per_sample_affine(self, x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        """``x * scale + shift`` in ``x``'s dtype; ``scale`` and ``shift`` hold one value per
        sample and channel, shaped to broadcast over ``x``."""
        if _runs_functions(x, self.channel_dim == 1):
            return PerSampleAffine.apply(x, scale, shift, self.channel_dim)
        return _affine(x, scale, shift).to(x.dtype)

    def _fuses_batch_norm(self, x: Tensor) -> bool:
        """Whether the layer runs as one :class:`ModulatedBatchNorm`: a BatchNorm2d (its own
        forward, or timm's BN + act) normalising a float32/float64 map with batch statistics,
        with gradients, on the CPU or CUDA. SyncBatchNorm (its statistics span
        processes), other inputs (BN's own errors included), mixed precision and other devices
        keep the two steps."""
        norm = self.wrapped
        if not isinstance(norm, nn.BatchNorm2d) or x.dim() != 4:
            return False
        batch_stats = norm.training or (norm.running_mean is None and norm.running_var is None)
        return ((type(norm).forward is _BatchNorm.forward or self.norm_act) and batch_stats and
                _runs_functions(x, channel_first=True) and
                x.dtype in (torch.float32, torch.float64) and
                all(t is None or t.dtype == x.dtype for t in (norm.weight, norm.bias)) and
                x.numel() > x.shape[1])  # (one value per channel: BN's own error is raised)

    def _modulated_batch_norm(self, x: Tensor, modulation: Tensor) -> Tensor:
        """The layer's output from the MLP's ``modulation`` (``d_scale``, ``d_shift``), with the
        running statistics and ``num_batches_tracked`` updated as ``_BatchNorm.forward`` does."""
        norm = self.wrapped
        momentum = 0.0 if norm.momentum is None else norm.momentum
        if norm.training and norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)
            if norm.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(norm.num_batches_tracked)
        # (batch statistics in eval mode: the norm has no running ones, both are None)
        return ModulatedBatchNorm.apply(x, norm.weight, norm.bias, modulation, norm.running_mean,
                                        norm.running_var, momentum, norm.eps)

    def _uses_running_stats(self) -> bool:
        norm = self.wrapped
        return (isinstance(norm, _BatchNorm) and not norm.training and
                norm.track_running_stats and norm.running_var is not None)

    def _running_affine(self, shape: list) -> tuple[Tensor, Tensor]:
        """Eval-mode BN as ``x * scale + shift``."""
        norm = self.wrapped
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = -norm.running_mean * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        return scale.view(shape), shift.view(shape)

    def extra_repr(self) -> str:
        return f'embed_dim={self.embed_dim}'


class PerSampleAffine(torch.autograd.Function):
    """``x * scale + shift`` with one scale and shift per sample and channel, and a backward
    pass that reads the map once.

    Autograd's ``addcmul`` backward takes four passes over the map (``grad * scale``,
    ``grad * x``, two sums), most of Domino's train-step cost (bench/README.md). Per sample,
    these are the gradients of an eval-mode batch norm with zero mean, unit variance and eps 0,
    which ATen computes in one pass: ``native_batch_norm_backward`` (the op autograd runs for
    ``F.batch_norm``), writing into the sample's part of the input gradient. It takes
    channel-first maps in either memory layout (SegFormer's head hands over channels-last
    ones), contiguous channel-last tokens, and mixed precision (a half-precision map with a
    float32 scale).

    ``x`` is contiguous, or channels-last with ``channel_dim`` 1 (channel-first maps; -1 for
    channel-last ones)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, shift: Tensor, channel_dim: int) -> Tensor:
        ctx.save_for_backward(x, scale)
        ctx.channel_dim, ctx.shift_shape = channel_dim, shift.shape
        return _affine(x, scale, shift).to(x.dtype)

    @staticmethod
    @once_differentiable  # (its gradients have no graph: a second derivative is refused)
    def backward(ctx, grad: Tensor):
        x, scale = ctx.saved_tensors
        if grad.stride() != x.stride():  # the kernel writes the gradient in the layout of x
            grad = torch.empty_like(x).copy_(grad)
        batch, channels = x.shape[0], x.shape[ctx.channel_dim]
        weight = scale.reshape(batch, channels)
        grad_x = torch.empty_like(x)
        grad_scale = weight.new_empty(batch, channels)
        grad_shift = weight.new_empty(batch, channels)
        stats = weight.new_zeros(channels), weight.new_ones(channels)

        def sample(t: Tensor, i: int) -> Tensor:  # sample i as a batch-norm input (a view of x)
            return t[i].unsqueeze(0) if ctx.channel_dim == 1 else t[i].reshape(-1, channels)

        for i in range(batch):
            torch.ops.aten.native_batch_norm_backward.out(
                sample(grad, i), sample(x, i), weight[i], *stats, None, None, False, 0.0,
                [True, True, True], out0=sample(grad_x, i), out1=grad_scale[i],
                out2=grad_shift[i])
        return (grad_x, grad_scale.view(scale.shape), grad_shift.view(ctx.shift_shape), None)


class ModulatedBatchNorm(torch.autograd.Function):
    """A Domino layer around a batch norm using batch statistics, in the passes over the map of
    the batch norm alone: ``gamma0 * x_hat * (1 + d_scale) + beta0 + d_shift`` (the layer's
    formula: the ``beta0 * d_scale`` terms cancel), from the MLP's output ``modulation`` =
    ``(d_scale, d_shift)``, (N, 2C).

    As a batch norm followed by a per-sample affine, the modulation costs one more forward and
    one more backward pass over the map than the norm, and a dozen small autograd nodes per
    layer: most of Domino's train-step cost (bench/README.md). Here the forward computes the
    batch statistics (``torch.batch_norm_update_stats``, which also updates the running ones as
    ``F.batch_norm`` does) and writes ``x * a + b``, ``a`` and ``b`` per sample and channel,
    which is how ATen's CPU batch norm computes its own output. The backward sums ``grad`` and
    ``grad * x_hat`` per sample and channel in one pass (ATen's eval-mode batch-norm backward per
    sample, given the batch's mean and variance), derives every other gradient from those sums,
    and writes ``grad_x = grad * a' + x * k + c``. Only ``x`` is kept for the backward (not the
    norm's output as well)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                modulation: Tensor, running_mean: Optional[Tensor],
                running_var: Optional[Tensor], momentum: float, eps: float) -> Tensor:
        d_scale, d_shift = modulation.chunk(2, dim=1)
        mean, var = torch.batch_norm_update_stats(x, running_mean, running_var, momentum)
        invstd = torch.rsqrt(var + eps)
        norm_gain = invstd if weight is None else weight * invstd  # the norm: x * gain + offset
        scale = 1 + d_scale
        gain = norm_gain * scale
        offset = torch.addcmul(d_shift, mean, gain, value=-1)
        if bias is not None:
            offset = offset + bias
        ctx.save_for_backward(x, weight, scale, mean, var, invstd, norm_gain, gain)
        ctx.eps = eps
        view = _channel_view(x, x.shape[0])
        return _affine(x, gain.view(view), offset.view(view))

    @staticmethod
    @once_differentiable  # (its gradients have no graph: a second derivative is refused)
    def backward(ctx, grad: Tensor):
        x, weight, scale, mean, var, invstd, norm_gain, gain = ctx.saved_tensors
        if grad.stride() != x.stride():  # the sums and grad_x take grad in the layout of x
            grad = torch.empty_like(x).copy_(grad)
        # (N, 2, C): per sample and channel sum(grad * x_hat) and sum(grad), x_hat being
        # (x - mean) * invstd, the order of (d_scale, d_shift) in the modulation
        sums = torch.stack([torch.stack(torch.ops.aten.native_batch_norm_backward(
            grad[i:i + 1], x[i:i + 1], None, mean, var, None, None, False, ctx.eps,
            [False, True, True])[1:]) for i in range(x.shape[0])])
        # the gradient reaching the norm's output (gamma * x_hat + beta) is grad * scale; its
        # two sums over the batch: the norm weight's gradient and the bias's through the norm
        grad_weight, grad_norm_bias = (sums * scale.unsqueeze(1)).sum(0)
        needs = ctx.needs_input_grad
        grad_x = None
        if needs[0]:  # the batch-norm backward of grad * scale, as grad * gain + x * k + c
            count = x.numel() // x.shape[1]
            k = norm_gain * invstd * grad_weight * (-1 / count)
            c = torch.addcmul(norm_gain * grad_norm_bias * (-1 / count), k, mean, value=-1)
            view = _channel_view(x, 1)
            grad_x = _affine(x, k.view(view), c.view(view))
            grad_x.addcmul_(grad, gain.view(_channel_view(x, x.shape[0])))
        grad_bias = sums[:, 1].sum(0) if needs[2] else None
        if weight is not None:
            sums[:, 0] *= weight  # d_scale scales gamma * x_hat
        return (grad_x, grad_weight if needs[1] else None, grad_bias,
                sums.view(x.shape[0], -1), None, None, None, None)


def _runs_functions(x: Tensor, channel_first: bool) -> bool:
    """Whether :class:`PerSampleAffine` / :class:`ModulatedBatchNorm` take ``x``: with
    gradients, a contiguous map (or a channels-last channel-first one), on the CPU or CUDA.
    (Their ATen ops exist on every device; tested on the CPU and, through bench/gpu_check.py,
    meant for CUDA; other devices keep torch ops.)"""
    dense = x.is_contiguous() or (channel_first and x.dim() == 4 and
                                  x.is_contiguous(memory_format=torch.channels_last))
    return torch.is_grad_enabled() and dense and x.device.type in ('cpu', 'cuda')


def _torch_norm_forward(norm: nn.Module):
    """The forward of the torch norm class that timm's norm + act layer ``norm`` extends:
    ``BatchNorm2d``'s for ``BatchNormAct2d``, ``SyncBatchNorm``'s (statistics over the
    processes) for ``SyncBatchNormAct``; the layer's dropout and activation are left out."""
    return next(cls.forward for cls in type(norm).__mro__
                if cls.__module__.startswith('torch.nn.modules'))


def _affine(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``x * scale + shift``, ``scale`` and ``shift`` broadcast over ``x``. ATen's ``addcmul`` is
    slow where they are constant along the contiguous last dimension (channel-first planes: 0.71
    vs 0.32 ms on a 2x96x64x128 map), a multiply then an in-place add is not; elsewhere
    (channels-last maps, channel-last tokens) ``addcmul`` is the faster."""
    if x.is_contiguous() and scale.shape[-1] == 1:
        return torch.mul(x, scale).add_(shift)
    return torch.addcmul(shift, x, scale)


def _channel_view(x: Tensor, batch: int) -> tuple:
    """The shape of a per-(sample, channel) tensor broadcast over the channel-first map ``x``."""
    return (batch, x.shape[1], *[1] * (x.dim() - 2))


def _accept_unwrapped_norm_keys(module: DominoNorm, state_dict: dict, prefix: str, *args) -> None:
    """Load baseline checkpoints: rename ``<prefix>weight`` etc. to ``<prefix>wrapped.weight``."""
    for name in module.wrapped.state_dict():
        if prefix + name in state_dict and prefix + 'wrapped.' + name not in state_dict:
            state_dict[prefix + 'wrapped.' + name] = state_dict.pop(prefix + name)


def with_wrapped_norm_keys(model: nn.Module, state_dict: dict) -> dict:
    """``state_dict`` with a baseline's norm keys under the Domino layers' wrapped norms of
    ``model``, as loading renames them (to check a checkpoint's fit before loading it)."""
    renamed = dict(state_dict)
    for name, module in model.named_modules():
        if isinstance(module, DominoNorm):
            _accept_unwrapped_norm_keys(module, renamed, f'{name}.' if name else '')
    return renamed


def domino_mlp_keys(module: nn.Module) -> set[str]:
    """The state-dict keys of the Domino layers' MLPs in ``module``: what converting a model
    adds to each of its norms, zero-initialised, so a checkpoint of the unconverted model may
    lack them."""
    return {f'{name}.mlp.{key}' if name else f'mlp.{key}'
            for name, child in module.named_modules() if isinstance(child, DominoNorm)
            for key in child.mlp.state_dict()}
