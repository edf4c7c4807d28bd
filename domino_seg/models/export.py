"""ONNX export of a plain (folded) segmentor, and of the CLIP image tower of a domain config.

The segmentor graph takes images as the data pipeline loads them and returns whole-inference
logits at the input's size, with a dynamic batch, and dynamic height and width unless the
model fixes them (see :func:`export_segmentor_onnx`). Exporting needs ``onnx``
(``pip install -e ".[deploy]"``); checking the export, ``onnxruntime``. torch's
TorchScript-based exporter (``dynamo=False``) is used: torch >= 2.9's default, the
``torch.export`` one, also needs ``onnxscript``.
"""
from __future__ import annotations

import copy
import itertools
import json
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from domino_seg.errors import ConfigError

OPSET = 17
INSTALL = 'pip install -e ".[deploy]"'


def require(module: str, what: str):
    """Import ``module`` (onnx, onnxruntime) or fail saying how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f'{what} needs the {module} package, which is not installed: '
                          f'{INSTALL} (or pip install {module}).') from None


class SegmentorLogits(nn.Module):
    """``image`` (N, 3, H, W) float, pixel values 0..255 in the channel order the data pipeline
    loads (BGR, as ``cv2.imread``/mmcv) -> logits (N, num_classes, H, W): the model's data
    preprocessor (channel swap, mean/std) and whole inference (``encode_decode``: one pass over
    the whole image, logits resized to it), as ``model.predict`` on an unpadded image of that
    size computes them before the argmax. ``embedding``: every sample's domain embedding, for
    a model with Domino layers (to compare it with its folded copy)."""

    def __init__(self, model: nn.Module, embedding: Optional[Tensor] = None):
        super().__init__()
        self.model = model
        pre = model.data_preprocessor
        self.bgr_to_rgb = bool(getattr(pre, 'channel_conversion', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        self.meta = {} if embedding is None else dict(domain_embedding=embedding)

    def forward(self, image: Tensor) -> Tensor:
        pre = self.model.data_preprocessor
        x = image.float()
        if self.bgr_to_rgb:
            x = x[:, [2, 1, 0]]
        if self.normalize:
            x = (x - pre.mean) / pre.std
        metas = [dict(self.meta, img_shape=x.shape[2:])] * x.shape[0]
        return self.model.encode_decode(x, metas)


def preprocessing(model: nn.Module) -> dict:
    """What :class:`SegmentorLogits` does to its input, for the ONNX metadata and the docs."""
    pre = model.data_preprocessor
    info = dict(input='float32 (N, 3, H, W), pixel values 0..255, channels BGR (cv2.imread / '
                      'mmcv order) -- the graph converts and normalises them itself',
                output='float32 logits (N, num_classes, H, W); argmax over dim 1 = trainIds')
    if getattr(pre, '_enable_normalize', False):
        info.update(mean_rgb=[float(v) for v in pre.mean.flatten()],
                    std_rgb=[float(v) for v in pre.std.flatten()])
    return info


def resizing(img_scale: Sequence[int]) -> dict:
    """How to resize an image before the graph (which does not) so that it computes what
    tools/infer.py does: the evaluation pipeline's ``Resize`` to ``data.img_scale`` keeping the
    ratio, for the ONNX metadata (``img_scale``, ``keep_ratio``, ``resize``)."""
    width, height = (int(s) for s in img_scale)
    return dict(img_scale=[width, height], keep_ratio=True, resize=(
        f'before the graph, resize an image of w x h pixels to fit img_scale [{width}, '
        f'{height}] (width, height) keeping its ratio, as tools/infer.py and tools/test.py do: '
        f's = min({max(width, height)} / max(w, h), {min(width, height)} / min(w, h)), new '
        'size int(w * s + 0.5) x int(h * s + 0.5), bilinear (mmcv.imrescale); after it, resize '
        'the logits back to h x w (bilinear, align_corners=False) and take the argmax over '
        'the classes'))


def export_segmentor_onnx(model: nn.Module, path: str, size: Sequence[int],
                          metadata: Optional[dict] = None, opset: int = OPSET,
                          img_scale: Optional[Sequence[int]] = None) -> Optional[str]:
    """Write ``model`` (a plain EncoderDecoder, e.g. :func:`fold_domino`'s) as ONNX: input
    ``image`` (see :class:`SegmentorLogits`), output ``logits``, traced at ``size`` (h, w)
    with a dynamic batch. Height and width are dynamic too, unless the model

    * resamples a ViT positional embedding to the image's token grid (the CLIP and DINOv2
      backbones; ONNX has no antialiased bicubic resize): it is computed for ``size`` and
      stored as a constant;
    * pools to a fixed grid (``nn.AdaptiveAvgPool2d`` to more than 1x1: UPerHead's pyramid
      pooling): the pooling windows are those of ``size``;

    and then the graph takes images of ``size`` only. The output's dims are named ``batch``,
    ``classes``, ``height``, ``width``. Returns None (dynamic) or why the size is fixed.
    ``metadata`` (str -> JSON-able) goes into the model's ``metadata_props``, with
    :func:`resizing` for the ``img_scale`` [w, h] the model was trained at."""
    onnx = require('onnx', 'format=onnx')
    plain, pooled = traceable_copy(model)
    wrapper = SegmentorLogits(plain).eval()
    example = torch.rand(2, 3, *size) * 255
    with fixed_positional_embeddings(wrapper, example) as resampled:
        reasons = [why for why, fixed in (
            ('its backbone resamples a ViT positional embedding to the token grid', resampled),
            ('it pools to a fixed grid (nn.AdaptiveAvgPool2d, e.g. pyramid pooling)', pooled))
            if fixed]
        axes = {0: 'batch'} if reasons else {0: 'batch', 2: 'height', 3: 'width'}
        _export(wrapper, (example, ), path, ['image'], ['logits'],
                dict(image=axes, logits={0: 'batch', 1: 'classes', 2: 'height', 3: 'width'}),
                opset)
    fixed = ' and '.join(reasons) or None
    size_info = dict(input_size='dynamic' if not fixed else
                     f'{size[0]}x{size[1]} (height x width) only: {fixed}')
    if img_scale is not None:
        size_info.update(resizing(img_scale))
    _add_metadata(onnx, path, dict(preprocessing(model), **size_info, **(metadata or {})))
    return fixed


class FixedAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` whose windows are computed, as Python numbers, from the input
    size it meets: the ONNX tracer bakes them in (its own export needs static sizes that the
    tracer no longer knows after a reshape to a dynamic batch)."""

    def __init__(self, pool: nn.AdaptiveAvgPool2d):
        super().__init__()
        size = pool.output_size
        self.output_size = (size, size) if isinstance(size, int) else tuple(size)

    def forward(self, x: Tensor) -> Tensor:
        (height, width), (out_h, out_w) = (int(s) for s in x.shape[-2:]), self.output_size
        out_h, out_w = out_h or height, out_w or width  # None keeps the input's size
        if height % out_h == 0 and width % out_w == 0:
            kernel = (height // out_h, width // out_w)
            return nn.functional.avg_pool2d(x, kernel, kernel)
        rows = [(i * height // out_h, -(-(i + 1) * height // out_h)) for i in range(out_h)]
        cols = [(j * width // out_w, -(-(j + 1) * width // out_w)) for j in range(out_w)]
        cells = [x[..., r0:r1, c0:c1].mean(dim=(-2, -1)) for r0, r1 in rows for c0, c1 in cols]
        return torch.stack(cells, dim=-1).unflatten(-1, (out_h, out_w))


class TraceableMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (its parameters, shared) computed with shapes the ONNX tracer
    keeps symbolic: torch's own bakes the key length of the traced input into a Reshape,
    so MiT's attention over a downsampled key grid would only run at the traced size."""

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        if attention.bias_k is not None or attention.add_zero_attn:
            raise NotImplementedError('exporting nn.MultiheadAttention with add_bias_kv or '
                                      'add_zero_attn')
        self.attention = attention

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = True,
                attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, None]:
        mha = self.attention
        if not mha.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if mha.in_proj_weight is not None:  # one packed q/k/v projection
            weights = mha.in_proj_weight.chunk(3)
        else:
            weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        biases = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None, ) * 3
        q, k, v = (nn.functional.linear(t, w, b).unflatten(-1, (mha.num_heads, -1))
                   .transpose(1, 2) for t, w, b in zip((query, key, value), weights, biases))
        mask = None
        if attn_mask is not None:
            mask = attn_mask if attn_mask.dim() == 2 else \
                attn_mask.unflatten(0, (-1, mha.num_heads))
            mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask, float('-inf')) \
                if mask.dtype == torch.bool else mask.to(q.dtype)
        if key_padding_mask is not None:
            padding = key_padding_mask[:, None, None, :]
            padding = torch.zeros_like(padding, dtype=q.dtype).masked_fill(
                padding, float('-inf')) if padding.dtype == torch.bool else padding.to(q.dtype)
            mask = padding if mask is None else mask + padding
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                         is_causal=is_causal and mask is None)
        out = mha.out_proj(out.transpose(1, 2).flatten(2))
        return (out if mha.batch_first else out.transpose(0, 1)), None


def traceable_copy(model: nn.Module) -> tuple[nn.Module, bool]:
    """A copy of ``model`` (eval mode) with the same outputs, whose ``nn.MultiheadAttention``
    layers are :class:`TraceableMultiheadAttention` and whose adaptive average pooling to more
    than 1x1 is :class:`FixedAdaptiveAvgPool2d`; and whether it had such pooling."""
    model = copy.deepcopy(model).eval()
    pooled = False
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.MultiheadAttention:
                setattr(module, name, TraceableMultiheadAttention(child))
            elif type(child) is nn.AdaptiveAvgPool2d and child.output_size not in (1, (1, 1)):
                setattr(module, name, FixedAdaptiveAvgPool2d(child))
                pooled = True
    return model, pooled


@contextmanager
def fixed_positional_embeddings(module: nn.Module, example: Tensor) -> Iterator[bool]:
    """Inside: timm's ``resample_abs_pos_embed`` (the ViT backbones resample their positional
    embedding to each image's token grid with it) returns, as a plain tensor the tracer stores
    as a constant, what it returned when ``module`` ran on ``example``. Yields whether the
    model resamples a positional embedding at all."""
    from timm.layers import pos_embed
    original = pos_embed.resample_abs_pos_embed
    users = [m for m in list(sys.modules.values())
             if m is not None and getattr(m, 'resample_abs_pos_embed', None) is original]
    results = []

    def record(*args, **kwargs):
        results.append(original(*args, **kwargs).detach().clone())
        return results[-1]
    calls = itertools.cycle(results)  # (each forward makes the same calls in the same order)

    def replay(*args, **kwargs):
        return next(calls)
    try:
        for user in users:
            user.resample_abs_pos_embed = record
        with torch.no_grad():
            module(example)
        for user in users:
            user.resample_abs_pos_embed = replay
        yield bool(results)
    finally:
        for user in users:
            user.resample_abs_pos_embed = original


class ClipImageEmbedding(nn.Module):
    """CLIP-preprocessed images (N, 3, S, S) -> (``embedding``: the domain embedding of the
    generator's mode -- zero_shot: the probability-weighted mix of the bank's condition
    embeddings, image: the normalised CLIP image embedding --, ``probabilities``: softmax over
    the bank's conditions of cosine similarity / temperature), as
    ``DomainPromptGenerator.embed_images`` and ``condition_probabilities`` compute them."""

    def __init__(self, generator):
        super().__init__()
        self.visual = generator.encoder.model.visual
        self.mode = generator.mode
        self.temperature = generator.temperature
        self.register_buffer('bank', generator.condition_embeddings.clone().float())

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        features = nn.functional.normalize(self.visual(image), dim=-1)
        probabilities = torch.softmax(features @ self.bank.T / self.temperature, dim=-1)
        embedding = probabilities @ self.bank if self.mode == 'zero_shot' else features
        return embedding, probabilities


def clip_preprocessing(generator) -> dict:
    """The CLIP image preprocessing (done outside the graph: PIL resize and crop)."""
    size = generator.encoder.model.visual.image_size
    size = list(size) if isinstance(size, (tuple, list)) else [size, size]
    return dict(input=f'float32 (N, 3, {size[0]}, {size[1]}), RGB, as open_clip preprocesses: '
                      f'{generator.encoder.preprocess}',
                outputs='embedding (N, D): the domain embedding; probabilities (N, C) over '
                        'conditions', conditions=list(generator.conditions),
                mode=generator.mode, temperature=generator.temperature, image_size=size)


def export_clip_image_onnx(generator, path: str, opset: int = OPSET) -> Tensor:
    """Write the CLIP image tower of ``generator`` (mode zero_shot or image) as ONNX (input
    ``image``, outputs ``embedding`` and ``probabilities``, dynamic batch); returns the traced
    example input, for checks."""
    onnx = require('onnx', 'clip_tower=true')
    wrapper = ClipImageEmbedding(generator).eval()
    info = clip_preprocessing(generator)
    example = torch.randn(2, 3, *info['image_size'])
    _export(wrapper, (example, ), path, ['image'], ['embedding', 'probabilities'],
            dict(image={0: 'batch'}, embedding={0: 'batch'}, probabilities={0: 'batch'}),
            opset)
    _add_metadata(onnx, path, info)
    return example


def _export(module: nn.Module, args: tuple, path: str, inputs: list, outputs: list,
            axes: dict, opset: int) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice and tracer warnings about Python
        # values: the dynamic sizes are checked against onnxruntime instead
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)


def _add_metadata(onnx, path: str, metadata: dict) -> None:
    model = onnx.load(path)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = str(key)
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(model, path)


def onnx_session(path: str):
    """An onnxruntime CPU session of ``path``."""
    ort = require('onnxruntime', 'checking the ONNX export')
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def max_onnx_difference(session, module: nn.Module, inputs: Tensor) -> tuple[float, float]:
    """(largest |difference| between ``session``'s first output and ``module``'s, largest
    |output| of ``module``) on ``inputs``."""
    with torch.no_grad():
        expected = module(inputs)
    expected = (expected[0] if isinstance(expected, tuple) else expected).numpy()
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
    return float(np.abs(got - expected).max()), float(np.abs(expected).max())
