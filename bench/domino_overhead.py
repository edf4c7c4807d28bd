#!/usr/bin/env python
"""Domino overhead benchmark: Domino segmentor vs the same segmentor without Domino.

Measures, in one run, on one model (default: SegFormer-B0-sized MiT-b0 + SegFormer head,
192x384 crops, batch 2):

* ``train_ratio``      train-step time (preprocess + forward + loss + backward + AdamW step)
                       Domino / baseline, image modes with a warm cache: each sample brings
                       its embedding, as a cache hit of ``domain=image|zero_shot`` does;
* ``text_train_ratio`` the same in ``text`` mode: each sample brings its condition label and
                       the data preprocessor looks its embedding up in the prompt bank's
                       table (same Domino layers and weights as the image side);
* ``infer_ratio``      ``test_step`` time (eval mode, no grad) Domino / baseline;
* ``params_added_pct`` (params(Domino) - params(baseline)) / params(baseline) * 100;
* ``cache_speedup``    (on-the-fly CLIP embedding + Domino train step) /
                       (cached embedding + Domino train step), with the real
                       ``DomainEmbeddingInputs`` step and ``DomainEmbedder`` (zero_shot,
                       ViT-B/16 with random weights).

Timings are interleaved (ABBA blocks: A B, B A, A B, ...) after a warm-up, so slow drifts and
machine noise hit both sides equally; each ratio is the ratio of the per-step medians. CUDA is
synchronised around every timed step. The last line printed is one JSON object.

    python bench/domino_overhead.py             # defaults: ~4 min on 2 CPU cores
    python bench/domino_overhead.py --device cuda --steps 60 --batch-size 8 \
        --height 512 --width 1024
    python bench/domino_overhead.py --override domino=full --override domino.mlp.hidden=8
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
from typing import Callable, Dict, List, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # random CLIP weights: never wait for the hub
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import domino_seg  # noqa: E402  (imports the compat fixes before mmseg)

TARGETS = dict(train_ratio=('<=', 1.05), text_train_ratio=('<=', 1.03), infer_ratio=('<=', 1.03),
               params_added_pct=('<', 1.0), cache_speedup=('>=', 2.0))

# SegFormer-B0 (MiT-b0 encoder, all-MLP head with 256 channels); the model group's
# segformer_mit_tiny already has MiT-b0's depths, heads, patch sizes and sr ratios (named: the
# default model group is another)
B0_OVERRIDES = ['model=segformer_mit_tiny', 'model.segmentor.backbone.embed_dims=32',
                'model.segmentor.decode_head.in_channels=[32,64,160,256]',
                'model.segmentor.decode_head.channels=256']
DOMINO_OVERRIDES = ['domino=head', 'domain=zero_shot', 'domain.clip.arch=ViT-B-16',
                    'domain.clip.pretrained=null']
# the text side: the same CLIP's text tower embeds the prompt bank (512-d as well)
TEXT_OVERRIDES = [o.replace('domain=zero_shot', 'domain=text') for o in DOMINO_OVERRIDES]
BASELINE_OVERRIDES = ['domino=none']


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # 40: at 16, two sides doing the same work (image and text) differed by up to 4 points
    parser.add_argument('--steps', type=int, default=40,
                        help='timed train steps per model (and per cache mode); inference runs '
                             '2x as many (default 40)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps per model before timing (default 2)')
    parser.add_argument('--block', type=int, default=1,
                        help='consecutive steps of one side per interleaved block (default 1: '
                             'A B B A A B ..., every step next to one of the other side)')
    parser.add_argument('--batch-size', type=int, default=2)
    # 192x384: a crop a 2-core CPU trains at in well under a second (the step at 256x512 runs
    # out of cache and is ~3x slower); see bench/README.md for how the ratios move with the crop
    parser.add_argument('--height', type=int, default=192)
    parser.add_argument('--width', type=int, default=384)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--clip-device', default='cpu',
                        help="where the on-the-fly CLIP runs (training runs it on the model's "
                             "device, in the data preprocessor; default cpu)")
    parser.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                        help='extra Hydra override, repeatable, applied after the built-in '
                             'SegFormer-B0 ones: domino.*/domain.* keys go to the Domino model '
                             'only, all others to both (e.g. domino=full, domino.mlp.hidden=8, '
                             'model.segmentor.backbone.embed_dims=64)')
    parser.add_argument('--threads', default='auto',
                        help="torch.set_num_threads: N, 'default' (leave torch's choice) or "
                             "'auto' (default): torch's choice, lowered on a CPU run when other "
                             "processes keep cores busy (1-min load average), since "
                             "oversubscribed OpenMP threads make CPU timings several times "
                             "slower and very noisy")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-cache', action='store_true',
                        help='skip the CLIP cache measurement (no ViT-B/16 is built)')
    parser.add_argument('--malloc-defaults', action='store_true',
                        help="glibc malloc's defaults instead of the tools' setting "
                             '(engine/process.py: freed memory kept for the next step)')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- models / data

def build_models(args):
    """baseline, Domino (image modes) and Domino (text mode) with identical shared weights (the
    two Domino models identical but for where their embeddings come from), and their configs."""
    crop = f'data.crop_size=[{args.height},{args.width}]'
    common = B0_OVERRIDES + [crop]
    domino_cfg = domino_seg.compose(common + DOMINO_OVERRIDES + args.override)
    text_cfg = domino_seg.compose(common + TEXT_OVERRIDES + args.override)
    baseline_cfg = domino_seg.compose(common + BASELINE_OVERRIDES +
                                      [o for o in args.override if not _is_domino_key(o)])
    torch.manual_seed(args.seed)
    baseline = domino_seg.build_segmentor(baseline_cfg)
    torch.manual_seed(args.seed)
    domino = domino_seg.build_segmentor(domino_cfg)
    text = domino_seg.build_segmentor(text_cfg)
    if type(domino).__name__ != 'DomainAwareEncoderDecoder' or domino.domino_scope == 'none':
        raise SystemExit(f'the Domino config built {type(domino).__name__} without Domino layers')
    if text.domain_embed_dim != domino.domain_embed_dim:
        raise SystemExit(f'text embeddings are {text.domain_embed_dim}-d, image ones '
                         f'{domino.domain_embed_dim}-d: give both modes the same CLIP')
    # Identical shared weights (the Domino pre-hook maps plain norm keys into `wrapped.`), so
    # both models do exactly the same work apart from the Domino layers.
    missing, unexpected = domino.load_state_dict(baseline.state_dict(), strict=False)
    extra = [k for k in missing if not ('.mlp.' in k or k.startswith('domain_encoder.'))]
    if unexpected or extra:
        raise SystemExit(f'baseline and Domino models differ beyond Domino layers: '
                         f'unexpected={unexpected[:5]} missing={extra[:5]}')
    text.load_state_dict(domino.state_dict())
    return (dict(baseline=baseline, domino=domino, text=text),
            dict(baseline=baseline_cfg, domino=domino_cfg, text=text_cfg))


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


def pack(images, labels, embeddings=None, conditions=None) -> dict:
    """What PackSegInputs + the dataloader's collate would hand the model: each sample with its
    domain embedding (image modes, cache hit) or its condition label (text mode)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from domino_seg.conditions import EMBEDDING_KEY
    from domino_seg.domain.transforms import CONDITION_KEY
    inputs, samples = [], []
    domains = ({EMBEDDING_KEY: e} for e in embeddings) if conditions is None else \
        ({CONDITION_KEY: c} for c in conditions)
    for img, label, domain in zip(images, labels, domains):
        h, w = img.shape[:2]
        inputs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64))[None])
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), **domain))
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
    """The reported ratio: median step time / median step time."""
    return statistics.median(num) / statistics.median(den)


def paired_ratio(num: List[float], den: List[float]) -> float:
    """Median over rounds of the ratio of the two sides' i-th steps (run next to each other):
    a cross-check that is insensitive to slow drifts; far from ``ratio`` means noisy timings."""
    return statistics.median(a / b for a, b in zip(num, den))


# ----------------------------------------------------------------------------- benchmarks

class Batches:
    """A few fixed random batches (uint8 BGR images, labels 0..18, 512-d unit embeddings, and
    condition labels drawn from ``conditions``, the prompt bank's, for text mode)."""

    def __init__(self, args, embed_dim: int, conditions: Sequence[str] = (), n: int = 4):
        gen = np.random.default_rng(args.seed)
        self.images = [random_images(args, gen, args.batch_size) for _ in range(n)]
        self.labels = [[gen.integers(0, 19, (args.height, args.width), dtype=np.uint8)
                        for _ in range(args.batch_size)] for _ in range(n)]
        self.embeddings = [random_embeddings(gen, args.batch_size, embed_dim) for _ in range(n)]
        self.conditions = [list(gen.choice(conditions, args.batch_size)) if conditions else None
                           for _ in range(n)]

    def __len__(self):
        return len(self.images)

    def packed(self, i: int, text: bool = False) -> dict:
        j = i % len(self)
        if text:
            return pack(self.images[j], self.labels[j], conditions=self.conditions[j])
        return pack(self.images[j], self.labels[j], self.embeddings[j])


def bench_train_infer(args, models, optims, batches, device):
    """Train steps of all three models interleaved; inference of baseline and Domino (image)."""
    def train_side(name):
        def prepare(i):
            # fresh samples: the preprocessor edits their metainfo
            data = batches.packed(i, text=name == 'text')
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
    infer = interleaved({n: infer_side(n) for n in ('baseline', 'domino')}, 2 * args.steps,
                        args.warmup, args.block, device)
    return train, infer


def bench_cache(args, domino, optim, domino_cfg, batches, device, cache_dir):
    """(on-the-fly CLIP + Domino train step) vs (cache hit + Domino train step)."""
    from mmseg.registry import TRANSFORMS

    from domino_seg.domain import builder as domain_builder
    from domino_seg.domain.embedder import DomainEmbedder
    gen_cfg = domain_builder.generator_cfg(domino_cfg.domain)
    inputs = TRANSFORMS.build(domain_builder.transform_cfg(domino_cfg.domain))  # a worker's part
    clip_device = torch.device(args.clip_device)
    transforms = dict(on_the_fly=DomainEmbedder(gen_cfg, cache_dir=None),
                      cached=DomainEmbedder(gen_cfg, cache_dir=cache_dir))
    build_s = {}
    for name, embedder in transforms.items():  # build CLIP (+ text bank) outside the timing
        start = time.perf_counter()
        embedder.generator(clip_device)
        build_s[name] = time.perf_counter() - start
    embed_dim = transforms['cached'].generator(clip_device).embed_dim
    if embed_dim != domino.domain_embed_dim:
        raise SystemExit(f'CLIP embeds {embed_dim}-d, Domino expects {domino.domain_embed_dim}-d')

    def embed(embedder, images):
        return list(embedder([inputs(dict(img=img)) for img in images], clip_device).cpu())

    # warm the cache: one miss per distinct image, then only hits
    for images in batches.images:
        embed(transforms['cached'], images)
    n_images = sum(len(images) for images in batches.images)
    if (transforms['cached'].hits, transforms['cached'].misses) != (0, n_images):
        raise SystemExit('warming the cache did not miss once per image (duplicate images?)')
    counters = {name: (t.hits, t.misses) for name, t in transforms.items()}

    def side(name):
        embedder = transforms[name]

        def prepare(i):
            j = i % len(batches)

            def step():
                embeddings = embed(embedder, batches.images[j])
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

def set_threads(threads: str, device: torch.device) -> str:
    """Apply --threads; return how the thread count was chosen."""
    default = torch.get_num_threads()
    if threads == 'default':
        return 'torch default'
    if threads != 'auto':
        torch.set_num_threads(int(threads))
        return '--threads'
    if device.type != 'cpu' or not hasattr(os, 'getloadavg'):
        return 'torch default'
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    load = os.getloadavg()[0]
    free = max(1, int(cores - load + 0.5))
    if free >= default:
        return f'torch default; load average {load:.1f} on {cores} cores'
    torch.set_num_threads(free)
    return (f'auto: lowered from {default}, load average {load:.1f} on {cores} cores; '
            '--threads default to keep torch\'s choice')


def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    ok = {'<=': value <= target, '<': value < target, '>=': value >= target}[op]
    return 'PASS' if ok else 'FAIL'


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.block < 1:
        raise SystemExit('--steps and --block must be >= 1, --warmup >= 0')
    device = torch.device(args.device)
    threads_note = set_threads(args.threads, device)
    from domino_seg.engine.process import keep_freed_memory
    malloc = ("glibc's defaults" if args.malloc_defaults else
              'freed memory kept, as the tools run' if keep_freed_memory() else
              "the platform's (the tools' setting does not apply)")
    wall_start = time.perf_counter()

    models, cfgs = build_models(args)
    domino, domino_cfg = models['domino'], cfgs['domino']
    params = dict(baseline=count_params(models['baseline']), domino=count_params(domino))
    params_added_pct = 100.0 * (params['domino'] - params['baseline']) / params['baseline']
    models = {name: model.to(device) for name, model in models.items()}
    optims = {name: make_optim_wrapper(models[name], cfgs[name]) for name in models}
    bank = models['text'].data_preprocessor.embedder.generator(device).conditions
    batches = Batches(args, domino.domain_embed_dim, list(bank))
    num_domino = sum(type(m).__name__ == 'DominoNorm' for m in domino.modules())

    where = (torch.cuda.get_device_name(device) if device.type == 'cuda'
             else f'{platform.processor() or platform.machine()}')
    print(f'Domino overhead benchmark | device {device} ({where}) | '
          f'{torch.get_num_threads()} torch threads ({threads_note}) | torch {torch.__version__}'
          f' | malloc: {malloc}')
    print(f'model: MiT-b0 + SegFormer head ({domino_cfg.model.segmentor.decode_head.channels} '
          f'channels), crop {args.height}x{args.width}, batch {args.batch_size}; Domino scope '
          f'{domino.domino_scope!r}: {num_domino} DominoNorm layers, mlp '
          f'{dict(domino_cfg.domino.mlp)}, {domino.domain_embed_dim}-d embeddings')
    print(f'sides: baseline, Domino with each sample\'s embedding (image modes, warm cache), '
          f'Domino in text mode (condition labels looked up in the {len(bank)}-condition bank)')
    print(f'timing: {args.warmup} warm-up + {args.steps} timed steps per side (inference '
          f'{2 * args.steps}), interleaved in ABBA blocks of {args.block}; '
          'ratio = median step time / median step time', flush=True)

    train, infer = bench_train_infer(args, models, optims, batches, device)
    results = dict(train_ratio=ratio(train['domino'], train['baseline']),
                   text_train_ratio=ratio(train['text'], train['baseline']),
                   infer_ratio=ratio(infer['domino'], infer['baseline']),
                   params_added_pct=params_added_pct, cache_speedup=float('nan'))
    paired = dict(train_ratio=paired_ratio(train['domino'], train['baseline']),
                  text_train_ratio=paired_ratio(train['text'], train['baseline']),
                  infer_ratio=paired_ratio(infer['domino'], infer['baseline']))
    cache = None
    if not args.skip_cache:
        with tempfile.TemporaryDirectory(prefix='domino_bench_cache_') as cache_dir:
            cache, delta, build_s = bench_cache(args, domino, optims['domino'],
                                                domino_cfg, batches, device, cache_dir)
        results['cache_speedup'] = ratio(cache['on_the_fly'], cache['cached'])
        paired['cache_speedup'] = paired_ratio(cache['on_the_fly'], cache['cached'])
    wall = time.perf_counter() - wall_start

    print()
    print('per-step time: median [p25, p75]')
    print(f'  train step      baseline  {ms(train["baseline"])}')
    print(f'  train step      Domino    {ms(train["domino"])}  (image modes, warm cache)')
    print(f'  train step      Domino    {ms(train["text"])}  (text mode)')
    print(f'  inference step  baseline  {ms(infer["baseline"])}')
    print(f'  inference step  Domino    {ms(infer["domino"])}')
    if cache is not None:
        for name, label in (('on_the_fly', 'on-the-fly CLIP'), ('cached', 'cached embedding')):
            hits, misses = delta[name]
            print(f'  Domino step + {label:<17}{ms(cache[name])}  '
                  f'({hits} cache hits, {misses} CLIP forwards)')
        print(f'  (ViT-B-16 CLIP on {args.clip_device}, built in '
              f'{sum(build_s.values()) / len(build_s):.1f} s per embedder, untimed)')
    print(f'  parameters      baseline {params["baseline"]:,}, Domino {params["domino"]:,} '
          f'(+{params["domino"] - params["baseline"]:,})')
    print()
    print(f'  {"metric":<18}{"measured":>9}{"paired":>9}   {"target":<9}result')
    fmt = dict(train_ratio='{:.3f}x', text_train_ratio='{:.3f}x', infer_ratio='{:.3f}x',
               params_added_pct='{:.3f}%',
               cache_speedup='{:.2f}x')
    for key, (op, target) in TARGETS.items():
        value = results[key]
        skipped = value != value
        shown = 'skipped' if skipped else fmt[key].format(value)
        pair = fmt[key].format(paired[key]) if key in paired else '-'
        unit = '%' if key == 'params_added_pct' else 'x'
        print(f'  {key:<18}{shown:>9}{pair:>9}   {op + " " + format(target, "g") + unit:<9}'
              f'{"SKIP" if skipped else verdict(key, value)}')
    print('  (paired = median of the ratios of neighbouring steps, a noise cross-check)')
    print(f'  total {wall:.0f} s')

    def median_ms(times):
        return round(1e3 * statistics.median(times), 2)

    out = {key: (None if value != value else round(value, 4)) for key, value in results.items()}
    out.update(
        passed={key: verdict(key, v) == 'PASS' for key, v in results.items() if v == v},
        paired={key: round(v, 4) for key, v in paired.items()},
        train_ms={name: median_ms(t) for name, t in train.items()},
        infer_ms={name: median_ms(t) for name, t in infer.items()},
        params=params, device=str(device), torch_threads=torch.get_num_threads(), malloc=malloc,
        batch_size=args.batch_size, crop=[args.height, args.width], steps=args.steps,
        overrides=args.override, wall_s=round(wall, 1))
    if cache is not None:
        out['cache_step_ms'] = {name: median_ms(t) for name, t in cache.items()}
        out['cache_hits_misses'] = {name: list(v) for name, v in delta.items()}
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
