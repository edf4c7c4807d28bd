#!/usr/bin/env python
"""Domino overhead benchmark: Domino segmentor vs the same segmentor without Domino.

Measures, in one run, on one model (default: SegFormer-B0-sized MiT-b0 + SegFormer head,
256x512 crops, batch 2):

* ``train_ratio``      train-step time (preprocess + forward + loss + backward + AdamW step)
                       Domino / baseline;
* ``infer_ratio``      ``test_step`` time (eval mode, no grad) Domino / baseline;
* ``params_added_pct`` (params(Domino) - params(baseline)) / params(baseline) * 100;
* ``cache_speedup``    (on-the-fly CLIP embedding + Domino train step) /
                       (cached embedding + Domino train step), with the real
                       ``DomainEmbedding`` transform (zero_shot, ViT-B/16 with random weights).

Timings are interleaved (ABBA blocks: A B, B A, A B, ...) after a warm-up, so slow drifts and
machine noise hit both sides equally; each ratio is the ratio of the per-step medians. CUDA is
synchronised around every timed step. The last line printed is one JSON object.

    python bench/domino_overhead.py                      # defaults, ~3 min on 2 CPU cores
    python bench/domino_overhead.py --device cuda --steps 60 --batch-size 8 --height 512 --width 1024
    python bench/domino_overhead.py --override domino=full --override model.segmentor.decode_head.channels=128
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # random CLIP weights: never wait for the hub
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import domino_seg  # noqa: E402  (imports the compat fixes before mmseg)

TARGETS = dict(train_ratio=('<=', 1.05), infer_ratio=('<=', 1.03),
               params_added_pct=('<', 1.0), cache_speedup=('>=', 2.0))

# SegFormer-B0 (MiT-b0 encoder, all-MLP head with 256 channels); the model group's
# segformer_mit_tiny already has MiT-b0's depths, heads, patch sizes and sr ratios.
B0_OVERRIDES = ['model.segmentor.backbone.embed_dims=32',
                'model.segmentor.decode_head.in_channels=[32,64,160,256]',
                'model.segmentor.decode_head.channels=256']
DOMINO_OVERRIDES = ['domino=head', 'domain=zero_shot', 'domain.clip.arch=ViT-B-16',
                    'domain.clip.pretrained=null']
BASELINE_OVERRIDES = ['domino=none']


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=16,
                        help='timed train steps per model (and per cache mode); inference runs '
                             '2x as many (default 16)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps per model before timing (default 2)')
    parser.add_argument('--block', type=int, default=1,
                        help='consecutive steps of one side per interleaved block (default 1: '
                             'A B B A A B ..., every step next to one of the other side)')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--clip-device', default='cpu',
                        help="where the on-the-fly CLIP runs (default cpu: DomainEmbedding runs "
                             "in the data pipeline, whose dataloader workers are always CPU)")
    parser.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                        help='extra Hydra override for both models, repeatable; applied after '
                             'the SegFormer-B0 and Domino/baseline overrides (e.g. '
                             'domino=full, domino.mlp.hidden=8, model.segmentor.backbone.'
                             'embed_dims=64)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: leave torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-cache', action='store_true',
                        help='skip the CLIP cache measurement (no ViT-B/16 is built)')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- models / data

def build_models(args):
    crop = f'data.crop_size=[{args.height},{args.width}]'
    common = B0_OVERRIDES + [crop]
    domino_cfg = domino_seg.compose(common + DOMINO_OVERRIDES + args.override)
    baseline_cfg = domino_seg.compose(common + BASELINE_OVERRIDES +
                                      [o for o in args.override if not _is_domino_key(o)])
    torch.manual_seed(args.seed)
    baseline = domino_seg.build_segmentor(baseline_cfg)
    torch.manual_seed(args.seed)
    domino = domino_seg.build_segmentor(domino_cfg)
    if type(domino).__name__ != 'DomainAwareEncoderDecoder' or domino.domino_scope == 'none':
        raise SystemExit(f'the Domino config built {type(domino).__name__} without Domino layers')
    # Identical shared weights (the Domino pre-hook maps plain norm keys into `wrapped.`), so
    # both models do exactly the same work apart from the Domino layers.
    missing, unexpected = domino.load_state_dict(baseline.state_dict(), strict=False)
    extra = [k for k in missing if not ('.mlp.' in k or k.startswith('domain_encoder.'))]
    if unexpected or extra:
        raise SystemExit(f'baseline and Domino models differ beyond Domino layers: '
                         f'unexpected={unexpected[:5]} missing={extra[:5]}')
    return baseline, domino, baseline_cfg, domino_cfg


def _is_domino_key(override: str) -> bool:
    key = override.lstrip('+~').split('=')[0]
    return key.split('.')[0] in ('domino', 'domain')


def make_optim_wrapper(model, cfg):
    """The optimizer wrapper train.py would use (AdamW + paramwise_cfg of the model group)."""
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from domino_seg.models import builder as model_builder
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # paramwise_cfg logs three lines per parameter
    try:
        return build_optim_wrapper(model, model_builder.optim_wrapper_cfg(cfg.model))
    finally:
        logger.setLevel(level)


def random_images(args, gen: np.random.Generator, n: int) -> List[np.ndarray]:
    """HxWx3 uint8 BGR images, as LoadImageFromFile delivers them."""
    return [gen.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(n)]


def random_embeddings(gen: np.random.Generator, n: int, dim: int) -> List[torch.Tensor]:
    e = torch.from_numpy(gen.standard_normal((n, dim)).astype(np.float32))
    return list(torch.nn.functional.normalize(e, dim=1))


def pack(images, labels, embeddings) -> dict:
    """What PackSegInputs + the dataloader's collate would hand the model."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    for img, label, emb in zip(images, labels, embeddings):
        h, w = img.shape[:2]
        inputs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64))[None])
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                 domain_embedding=emb))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- timing

def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved(fns: Dict[str, Callable[[int], Callable[[], None]]], steps: int, warmup: int,
                block: int, device: torch.device) -> Dict[str, List[float]]:
    """Per-step seconds of each side, run in alternating blocks (ABBA order: A B, B A, ...)
    after a warm-up interleaved the same way. ``fns[name](i)`` prepares step ``i`` of that side
    (untimed) and returns the callable that is timed."""
    names = list(fns)
    calls = {name: 0 for name in names}

    def run(name: str, timed: List[float] = None) -> None:
        step = fns[name](calls[name])
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if timed is not None:
            timed.append(time.perf_counter() - start)
        calls[name] += 1

    for _ in range(warmup):
        for name in names:
            run(name)
    times = {name: [] for name in names}
    rounds = -(-steps // block)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            for _ in range(min(block, steps - len(times[name]))):
                run(name, times[name])
    return times


def ms(times: List[float]) -> str:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return f'{1e3 * statistics.median(times):8.1f} ms  [p25 {1e3 * q[0]:.1f}, p75 {1e3 * q[2]:.1f}]'


def ratio(num: List[float], den: List[float]) -> float:
    return statistics.median(num) / statistics.median(den)


# ----------------------------------------------------------------------------- benchmarks

class Batches:
    """A few fixed random batches (uint8 BGR images, labels 0..18, 512-d unit embeddings)."""

    def __init__(self, args, embed_dim: int, n: int = 4):
        gen = np.random.default_rng(args.seed)
        self.images = [random_images(args, gen, args.batch_size) for _ in range(n)]
        self.labels = [[gen.integers(0, 19, (args.height, args.width), dtype=np.uint8)
                        for _ in range(args.batch_size)] for _ in range(n)]
        self.embeddings = [random_embeddings(gen, args.batch_size, embed_dim) for _ in range(n)]

    def __len__(self):
        return len(self.images)

    def packed(self, i: int) -> dict:
        j = i % len(self)
        return pack(self.images[j], self.labels[j], self.embeddings[j])


def bench_train_infer(args, models, optims, batches, device):
    def train_side(name):
        def prepare(i):
            data = batches.packed(i)  # fresh samples: the preprocessor edits their metainfo
            return lambda: models[name].train_step(data, optims[name])
        return prepare

    def infer_side(name):
        def prepare(i):
            data = batches.packed(i)

            def step():
                with torch.no_grad():
                    models[name].test_step(data)
            return step
        return prepare

    for model in models.values():
        model.train()
    train = interleaved({n: train_side(n) for n in models}, args.steps, args.warmup, args.block,
                        device)
    for model in models.values():
        model.eval()
    infer = interleaved({n: infer_side(n) for n in models}, 2 * args.steps, args.warmup,
                        args.block, device)
    return train, infer


def bench_cache(args, domino, optim, domino_cfg, batches, device, cache_dir):
    """(on-the-fly CLIP + Domino train step) vs (cache hit + Domino train step)."""
    from domino_seg.domain import builder as domain_builder
    from domino_seg.domain.transforms import DomainEmbedding
    gen_cfg = dict(domain_builder.generator_cfg(domino_cfg.domain), device=args.clip_device)
    transforms = dict(on_the_fly=DomainEmbedding(gen_cfg, cache_dir=None),
                      cached=DomainEmbedding(gen_cfg, cache_dir=cache_dir))
    build_s = {}
    for name, transform in transforms.items():  # build CLIP (+ text bank) outside the timing
        start = time.perf_counter()
        _ = transform.generator
        build_s[name] = time.perf_counter() - start
    embed_dim = transforms['cached'].generator.embed_dim
    if embed_dim != domino.domain_embed_dim:
        raise SystemExit(f'CLIP embeds {embed_dim}-d, Domino expects {domino.domain_embed_dim}-d')
    # warm the cache: one miss per distinct image, then only hits
    for images in batches.images:
        for img in images:
            transforms['cached'](dict(img=img))
    n_images = sum(len(images) for images in batches.images)
    assert transforms['cached'].misses == n_images and transforms['cached'].hits == 0
    counters = {name: (t.hits, t.misses) for name, t in transforms.items()}

    def side(name):
        transform = transforms[name]

        def prepare(i):
            j = i % len(batches)

            def step():
                embeddings = [transform(dict(img=img))['domain_embedding']
                              for img in batches.images[j]]
                domino.train_step(pack(batches.images[j], batches.labels[j], embeddings), optim)
            return step
        return prepare

    domino.train()
    times = interleaved({n: side(n) for n in transforms}, args.steps, args.warmup, args.block,
                        device)
    calls = (args.warmup + args.steps) * args.batch_size
    delta = {name: (t.hits - counters[name][0], t.misses - counters[name][1])
             for name, t in transforms.items()}
    if delta['on_the_fly'] != (0, calls) or delta['cached'] != (calls, 0):
        raise SystemExit(f'unexpected cache behaviour (hits, misses) during timing: {delta}; '
                         f'expected on_the_fly=(0, {calls}) and cached=({calls}, 0)')
    return times, delta, build_s


# ----------------------------------------------------------------------------- main

def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    ok = {'<=': value <= target, '<': value < target, '>=': value >= target}[op]
    return 'PASS' if ok else 'FAIL'


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.block < 1:
        raise SystemExit('--steps and --block must be >= 1, --warmup >= 0')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    wall_start = time.perf_counter()

    baseline, domino, baseline_cfg, domino_cfg = build_models(args)
    params = dict(baseline=count_params(baseline), domino=count_params(domino))
    params_added_pct = 100.0 * (params['domino'] - params['baseline']) / params['baseline']
    models = dict(baseline=baseline.to(device), domino=domino.to(device))
    optims = {name: make_optim_wrapper(models[name], cfg)
              for name, cfg in (('baseline', baseline_cfg), ('domino', domino_cfg))}
    batches = Batches(args, domino.domain_embed_dim)
    num_domino = sum(type(m).__name__ == 'DominoNorm' for m in domino.modules())

    header = (f'Domino overhead | {platform.node()} | device {device} '
              f'({torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"}, '
              f'{torch.get_num_threads()} torch threads) | torch {torch.__version__}')
    print(header)
    print(f'model: MiT-b0 + SegFormer head (channels '
          f'{domino_cfg.model.segmentor.decode_head.channels}), crop {args.height}x{args.width}, '
          f'batch {args.batch_size}; Domino scope {domino.domino_scope!r}, '
          f'{num_domino} DominoNorm layers, mlp {dict(domino_cfg.domino.mlp)}, '
          f'embed_dim {domino.domain_embed_dim}')
    print(f'timing: {args.warmup} warm-up + {args.steps} timed train steps per side '
          f'(inference {2 * args.steps}), interleaved in ABBA blocks of {args.block}; '
          'ratio = median / median', flush=True)

    train, infer = bench_train_infer(args, models, optims, batches, device)
    results = dict(train_ratio=ratio(train['domino'], train['baseline']),
                   infer_ratio=ratio(infer['domino'], infer['baseline']),
                   params_added_pct=params_added_pct)

    cache = None
    if not args.skip_cache:
        with tempfile.TemporaryDirectory(prefix='domino_bench_cache_') as cache_dir:
            cache, delta, build_s = bench_cache(args, models['domino'], optims['domino'],
                                                domino_cfg, batches, device, cache_dir)
        results['cache_speedup'] = ratio(cache['on_the_fly'], cache['cached'])
    else:
        results['cache_speedup'] = float('nan')

    print()
    print('timings (median per step, interquartile range)')
    print(f'  train  baseline    {ms(train["baseline"])}')
    print(f'  train  domino      {ms(train["domino"])}')
    print(f'  infer  baseline    {ms(infer["baseline"])}')
    print(f'  infer  domino      {ms(infer["domino"])}')
    if cache is not None:
        print(f'  domino step + on-the-fly CLIP   {ms(cache["on_the_fly"])}   '
              f'(hits, misses) = {delta["on_the_fly"]}')
        print(f'  domino step + cached embedding  {ms(cache["cached"])}   '
              f'(hits, misses) = {delta["cached"]}')
    print(f'  params baseline {params["baseline"]:,}  domino {params["domino"]:,}  '
          f'(+{params["domino"] - params["baseline"]:,})')
    print()
    print(f'  {"metric":<18}{"measured":>10}   {"target":<8}result')
    fmt = dict(train_ratio='{:.3f}x', infer_ratio='{:.3f}x', params_added_pct='{:.3f}%',
               cache_speedup='{:.2f}x')
    for key in TARGETS:
        op, target = TARGETS[key]
        unit = '%' if key == 'params_added_pct' else 'x'
        value = results[key]
        shown = 'skipped' if value != value else fmt[key].format(value)
        result = 'SKIP' if value != value else verdict(key, value)
        print(f'  {key:<18}{shown:>10}   {op} {target:g}{unit:<3}{result}')
    wall = time.perf_counter() - wall_start

    out = {key: (None if value != value else round(value, 4)) for key, value in results.items()}
    out.update(
        passed={key: verdict(key, v) == 'PASS' for key, v in results.items() if v == v},
        device=str(device), torch_threads=torch.get_num_threads(),
        batch_size=args.batch_size, crop=[args.height, args.width], steps=args.steps,
        train_ms=dict(baseline=round(1e3 * statistics.median(train['baseline']), 2),
                      domino=round(1e3 * statistics.median(train['domino']), 2)),
        infer_ms=dict(baseline=round(1e3 * statistics.median(infer['baseline']), 2),
                      domino=round(1e3 * statistics.median(infer['domino']), 2)),
        params=params, overrides=args.override, wall_s=round(wall, 1))
    if cache is not None:
        out['cache_step_ms'] = dict(
            on_the_fly=round(1e3 * statistics.median(cache['on_the_fly']), 2),
            cached=round(1e3 * statistics.median(cache['cached']), 2))
        out['cache_hits_misses'] = {k: list(v) for k, v in delta.items()}
    print(f'  (total {wall:.0f} s)')
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
