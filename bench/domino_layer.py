#!/usr/bin/env python
"""One Domino layer against the BatchNorm it wraps: forward + backward of a single map.

Sides, each followed by an in-place ReLU (as in a ConvModule), interleaved A B C, C B A, ...
after a warm-up; medians per side and their ratios to ``batch_norm``:

* ``batch_norm``    ``nn.BatchNorm2d`` in training mode;
* ``domino``        ``DominoNorm`` around it: the norm and Domino's modulation as one
                    ``ModulatedBatchNorm`` (the path of a training BatchNorm2d);
* ``two_steps``     ``DominoNorm`` around a ``SyncBatchNorm`` (one process: plain batch
                    statistics): the norm, then ``PerSampleAffine``, the path SyncBatchNorm,
                    GroupNorm/LayerNorm and half-precision maps take.

Each Domino layer gets its output Linear from a 4-d code, as inside ``DomainAwareEncoderDecoder``.
Default shapes: SegFormer's head at 192x384 (2x256x48x96, channels-last), an EfficientNet-Lite0
expansion at 128x256 (2x96x64x128, contiguous), and a tiny map (2x32x4x4) whose time is the
layer's fixed cost. The last printed line is one JSON object.

    python bench/domino_layer.py                     # ~20 s on 2 CPU cores
    python bench/domino_layer.py --shape 8x256x128x256:channels_last --device cuda
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import domino_overhead as timing  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from domino_seg.engine.process import keep_freed_memory  # noqa: E402
from domino_seg.models import DominoNorm, domain_embedding_context  # noqa: E402

DEFAULT_SHAPES = ['2x256x48x96:channels_last', '2x96x64x128:contiguous', '2x32x4x4:contiguous']
LAYOUTS = {'channels_last': torch.channels_last, 'contiguous': torch.contiguous_format}
CODE_DIM = 4  # the shared domain encoder's output (domino.mlp.hidden)


def parse_shape(text: str) -> tuple:
    dims, _, layout = text.partition(':')
    try:
        shape = tuple(int(d) for d in dims.split('x'))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1 or (layout or 'contiguous') not in LAYOUTS:
        raise argparse.ArgumentTypeError(
            f'{text!r}: give NxCxHxW[:layout], four positive sizes, layout one of '
            f'{", ".join(LAYOUTS)} (e.g. 2x256x48x96:channels_last)')
    return shape, layout or 'contiguous'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shape', type=parse_shape, action='append', metavar='NxCxHxW[:layout]',
                        help='a map to time (repeatable; default: ' + ', '.join(DEFAULT_SHAPES)
                             + ')')
    parser.add_argument('--steps', type=int, default=60, help='timed steps per side (default 60)')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', default='auto',
                        help="torch CPU threads: 'auto' (default: fewer when the load average "
                             "shows busy cores), 'default', or a number")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error('--steps must be at least 1 and --warmup at least 0')
    args.shape = args.shape or [parse_shape(s) for s in DEFAULT_SHAPES]
    return args


def time_shape(shape: tuple, layout: str, args, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device, memory_format=LAYOUTS[layout])
    grad = torch.randn(shape, generator=gen).to(device, memory_format=LAYOUTS[layout])
    code = torch.randn(shape[0], CODE_DIM, generator=gen).to(device)
    channels = shape[1]
    norm = nn.BatchNorm2d(channels)
    layers = dict(batch_norm=norm,
                  domino=DominoNorm(copy.deepcopy(norm), CODE_DIM, mlp=dict(layers=1)),
                  two_steps=DominoNorm(nn.SyncBatchNorm(channels), CODE_DIM, mlp=dict(layers=1)))
    for layer in layers.values():
        layer.to(device).train()
    relu = nn.ReLU(inplace=True)
    with domain_embedding_context(code):  # the autograd function each side ends in
        functions = {name: type(layer(x.detach().requires_grad_()).grad_fn).__name__
                     for name, layer in layers.items()}

    def side(name):
        def prepare(_):
            inputs = x.detach().clone().requires_grad_()

            def step():
                with domain_embedding_context(code):
                    relu(layers[name](inputs)).backward(grad)
            return step
        return prepare

    times = timing.interleaved({name: side(name) for name in layers}, args.steps, args.warmup,
                               1, device)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    return dict(ms=ms, ratio={name: ms[name] / ms['batch_norm'] for name in ms},
                grad_fn=functions)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    threads = timing.set_threads(args.threads, device)
    malloc = ('freed memory kept, as the tools run' if keep_freed_memory() else
              "the platform's (the tools' setting does not apply)")
    print(f'Domino layer vs BatchNorm2d, forward + backward + ReLU | device {device} | '
          f'{torch.get_num_threads()} torch threads ({threads}) | torch {torch.__version__} | '
          f'malloc: {malloc}')
    report = dict(device=str(device), threads=torch.get_num_threads(), malloc=malloc,
                  steps=args.steps, shapes={})
    for shape, layout in args.shape:
        key = f'{"x".join(map(str, shape))}:{layout}'
        result = report['shapes'][key] = time_shape(shape, layout, args, device)
        print(f'  {key:28s} ' + '  '.join(
            f'{name} {result["ms"][name]:.3f} ms ({result["ratio"][name]:.2f}x)'
            for name in result['ms']), flush=True)
    print(json.dumps(report))
    return report


if __name__ == '__main__':
    main()
