#!/usr/bin/env python
"""Framework overhead benchmark: domino-seg's training loop against mmseg's stock one.

Trains the same segmentor (the default model group, random weights) on the same data, crop,
batch size and number of iterations, each side in its own subprocess:

* ``none``  domino-seg's config with ``domino=none``: ``domino_seg.compose`` + ``to_mmengine``
            + ``DominoRunner``, as ``tools/train.py`` builds it, validation removed, after the
            process settings every tool makes (``engine/process.py``; ``--malloc-defaults``
            leaves them out);
* ``head``  the same with ``domino=head domain=text``;
* ``full``  the same with ``domino=full domain=text``;
* ``stock`` mmengine's ``Runner`` on an equivalent config: mmseg's ``CityscapesDataset`` and
            stock pipeline, ``SegDataPreProcessor``, ``OptimWrapper`` (same AdamW settings and
            schedulers), mmengine's default hooks.

Data: a small built-in synthetic benchmark (Cityscapes layout) written under a temporary
folder. Sides run in interleaved order (A B C D, D C B A, ...) ``--repeats`` times. Per side:
median iteration and data time (mmengine's message hub ``train/time``/``train/data_time``,
first ``--skip`` iterations left out), start-up seconds from launch to the first iteration,
peak resident memory (``ru_maxrss``). The last printed line is one JSON object with
``iter_ratio`` = none/stock, ``head_ratio`` and ``full_ratio`` (Domino/stock).

    python bench/framework_overhead.py                # ~3 min on 2 CPU cores
    python bench/framework_overhead.py --iters 40 --repeats 3 --crop 256 512 --batch-size 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIDES = {'none': ['domino=none'],
         'head': ['domino=head', 'domain=text'],
         'full': ['domino=full', 'domain=text'],
         'stock': ['domino=none']}
TARGETS = dict(iter_ratio=1.03, head_ratio=1.05, full_ratio=1.05)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=20, help='training iterations per run')
    parser.add_argument('--skip', type=int, default=2,
                        help='first iterations of a run left out of the medians (warm-up)')
    parser.add_argument('--repeats', type=int, default=2, help='runs per side, interleaved')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--crop', type=int, nargs=2, default=[128, 256], metavar=('H', 'W'))
    parser.add_argument('--threads', type=int, default=1, help='torch threads per run')
    parser.add_argument('--malloc-defaults', action='store_true',
                        help="domino-seg's sides without the tools' process settings "
                             '(engine/process.py: malloc keeps freed memory, imports frozen '
                             'out of the garbage collector), as the stock side runs')
    parser.add_argument('--quick', action='store_true',
                        help='smoke mode: 3 iterations, 1 repeat, batch 1, 32x64 crops')
    parser.add_argument('--side', choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument('--bench', help=argparse.SUPPRESS)
    parser.add_argument('--work-dir', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.skip, args.repeats, args.batch_size, args.crop = 3, 1, 1, 1, [32, 64]
    small = [f'--{k.replace("_", "-")}' for k in ('repeats', 'batch_size', 'threads')
             if getattr(args, k) < 1] + (['--crop'] if min(args.crop) < 8 else [])
    if small:
        parser.error(f'{", ".join(small)} too small (at least 1; crop sides at least 8)')
    if not 0 <= args.skip < args.iters:
        parser.error(f'--skip ({args.skip}) must be at least 0 and below --iters ({args.iters})')
    return args


# ----------------------------------------------------------------------------- one side

def project_cfg(args, side: str):
    """domino-seg's mmengine config of ``side``, validation removed, nothing saved."""
    import domino_seg
    from domino_seg.config import to_mmengine
    h, w = args.crop
    cfg = domino_seg.compose(SIDES[side] + [
        f'paths.synthetic={args.bench}', f'paths.work_dirs={args.work_dir}', 'data.generate=null',
        f'data.crop_size=[{h},{w}]', f'data.img_scale=[{2 * w},{2 * h}]', 'data.num_workers=0',
        f'schedule.batch_size={args.batch_size}', f'schedule.max_iters={args.iters}',
        f'log_interval={args.iters}', f'work_dir={args.work_dir}'])
    mm = to_mmengine(cfg)
    mm.update(val_dataloader=None, val_cfg=None, val_evaluator=None,
              train_cfg=dict(type='IterBasedTrainLoop', max_iters=args.iters))
    mm.default_hooks.checkpoint = dict(type='CheckpointHook', interval=args.iters + 1,
                                       save_last=False)
    mm.custom_hooks = [h for h in mm.get('custom_hooks', []) if h['type'] != 'MetricsJsonHook']
    return mm


def stock_cfg(args):
    """The same model, data and optimisation through mmseg's and mmengine's stock parts."""
    from mmengine.config import Config
    mm = project_cfg(args, 'stock')
    model = dict(mm.model)
    pre = {k: v for k, v in model['data_preprocessor'].items() if k not in ('type', 'embedder')}
    model.update(type='EncoderDecoder', data_preprocessor=dict(type='SegDataPreProcessor', **pre))
    for key in ('domino',):
        model.pop(key, None)
    project_pipeline = mm.train_dataloader.dataset.datasets[0].pipeline
    same = {t['type']: {k: v for k, v in t.items() if k != 'type'} for t in project_pipeline}
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    pipeline += [dict(type=t, **same[t]) for t in
                 ('RandomResize', 'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion')
                 if t in same]
    pipeline.append(dict(type='PackSegInputs'))
    optim = mm.optim_wrapper
    return Config(dict(
        default_scope='mmseg', work_dir=args.work_dir, model=model,
        train_dataloader=dict(
            batch_size=args.batch_size, num_workers=0, persistent_workers=False,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(type='CityscapesDataset', data_root=f'{args.bench}/cityscapes',
                         data_prefix=dict(img_path='leftImg8bit/train',
                                          seg_map_path='gtFine/train'),
                         pipeline=pipeline)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=args.iters),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(optim.optimizer),
                           paramwise_cfg=dict(optim.get('paramwise_cfg') or {})),
        param_scheduler=mm.param_scheduler,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=args.iters + 1,
                                           save_last=False),
                           logger=dict(type='LoggerHook', interval=args.iters)),
        env_cfg=mm.env_cfg, randomness=mm.randomness, log_level='WARNING'))


def run_side(args) -> dict:
    """Train one side; return its per-iteration times, start-up time and peak memory."""
    import resource

    import torch
    from mmengine.hooks import Hook

    import domino_seg  # noqa: F401  (compat fixes and registration)
    torch.set_num_threads(args.threads)
    if args.side == 'stock':
        from mmengine.runner import Runner
        runner = Runner.from_cfg(stock_cfg(args))
    else:
        from domino_seg.engine.process import prepare_process
        from domino_seg.engine.runner import DominoRunner
        if not args.malloc_defaults:
            prepare_process()  # as every tool does before its job
        runner = DominoRunner.from_cfg(project_cfg(args, args.side))
    record = dict(time=[], data_time=[], first_iter_at=None)

    class Timing(Hook):
        """Reads IterTimerHook's numbers after every iteration."""

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if record['first_iter_at'] is None:
                record['first_iter_at'] = time.time()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            hub = runner.message_hub
            record['time'].append(hub.get_scalar('train/time').current())
            record['data_time'].append(hub.get_scalar('train/data_time').current())

    runner.register_hook(Timing(), priority='LOWEST')
    runner.train()
    record['maxrss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record['model'] = type(runner.model).__name__
    return record


# ----------------------------------------------------------------------------- driver

def launch(args, side: str, bench: Path, work: Path) -> dict:
    """One side in a fresh interpreter (its own start-up time and peak memory)."""
    cmd = [sys.executable, __file__, '--side', side, '--bench', str(bench),
           '--work-dir', str(work / side), '--iters', str(args.iters),
           '--batch-size', str(args.batch_size), '--crop', *map(str, args.crop),
           '--threads', str(args.threads), '--skip', str(args.skip),
           *(['--malloc-defaults'] if args.malloc_defaults else [])]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])]),
        'OMP_NUM_THREADS': str(args.threads)}
    started = time.time()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f'side {side} failed (exit {result.returncode}):\n'
                         f'{result.stderr[-4000:]}')
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record['startup_s'] = record.pop('first_iter_at') - started
    return record


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args)))
        return {}
    from domino_seg.data.synthetic import write_benchmark
    wall = time.time()
    h, w = args.crop
    runs = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix='framework_overhead_') as tmp:
        bench = write_benchmark(Path(tmp) / 'synthetic', progress=False,
                                num_train=max(4, 2 * args.batch_size), num_val=1,
                                height=2 * h, width=2 * w, seed=0, conditions=())
        order = list(SIDES)
        for r in range(args.repeats):
            for side in (order if r % 2 == 0 else order[::-1]):
                runs[side].append(launch(args, side, bench, Path(tmp) / f'run{r}'))
                print(f'repeat {r} {side}: {runs[side][-1]["model"]} '
                      f'{1000 * statistics.median(runs[side][-1]["time"][args.skip:]):.1f} '
                      f'ms/iter', flush=True)

    def median(side, key):
        return statistics.median(t for run in runs[side] for t in run[key][args.skip:])

    iter_ms = {side: 1000 * median(side, 'time') for side in SIDES}
    data_ms = {side: 1000 * median(side, 'data_time') for side in SIDES}
    report = dict(
        iter_ratio=iter_ms['none'] / iter_ms['stock'],
        head_ratio=iter_ms['head'] / iter_ms['stock'],
        full_ratio=iter_ms['full'] / iter_ms['stock'],
        data_ratio={side: data_ms[side] / data_ms['stock'] for side in ('none', 'head', 'full')},
        iter_ms=iter_ms, data_ms=data_ms,
        startup_s={side: statistics.median(run['startup_s'] for run in runs[side])
                   for side in SIDES},
        peak_rss_mb={side: max(run['maxrss_mb'] for run in runs[side]) for side in SIDES},
        iters=args.iters, skip=args.skip, repeats=args.repeats, batch_size=args.batch_size,
        crop=args.crop, threads=args.threads, process_settings=not args.malloc_defaults,
        wall_s=time.time() - wall)
    report['pass'] = {key: report[key] <= target for key, target in TARGETS.items()}
    print(json.dumps(report))
    return report


if __name__ == '__main__':
    main()
