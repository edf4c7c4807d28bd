#!/usr/bin/env python
"""One-call GPU check: what a lent GPU should show, measured side by side in one run.

For ``clip_vit_b16_upernet`` and ``dinov2_vitb14_upernet`` (random weights) at 512x1024,
batch 2: the train-step time and peak memory of the baseline and ``domino=full``, in float32
and bf16 (mmengine's AmpOptimWrapper), interleaved (bench/domino_overhead.py's timing); the
inference time per 1024x2048 image (whole and slide); CLIP ViT-B/16 image embeddings per
second (batched, on the device, as the data preprocessor computes them); and a 50-iteration
``tools/train.py`` run on the built-in benchmark whose loss must go down, and Domino's per-sample
modulation's gradients against autograd's on the device. Writes one JSON
(``--out``) and prints it.

    python bench/gpu_check.py                 # on a GPU: about 5 minutes on an H100-class GPU
    python bench/gpu_check.py --dry-run       # CPU, tiny sizes: checks that it all runs
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import domino_overhead as timing  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import domino_seg  # noqa: E402  (compat fixes before mmseg)

MODELS = ('clip_vit_b16_upernet', 'dinov2_vitb14_upernet')
DOMAIN = ['domain=text', 'domain.clip.arch=ViT-B-16', 'domain.clip.pretrained=null']
# --dry-run: the same models at a CPU size (tests/conftest.py TINY_MODELS)
TINY = {
    'clip_vit_b16_upernet': [
        'model.embed_dim=32', 'model.segmentor.backbone.out_indices=[0,1,2,3]',
        'model.segmentor.backbone.model_cfg={vision_cfg:{width:32,layers:4,head_width:16},'
        'text_cfg:{width:32,heads:2,layers:1},embed_dim:16}'],
    'dinov2_vitb14_upernet': [
        'model.embed_dim=32', 'model.segmentor.backbone.out_indices=[0,1,2,3]',
        'model.segmentor.backbone.model_kwargs={embed_dim:32,depth:4,num_heads:2}'],
}
TINY_HEADS = ['model.segmentor.decode_head.channels=16',
              'model.segmentor.auxiliary_head.channels=16']


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dry-run', action='store_true',
                        help='CPU, tiny models and sizes: checks every step runs (~1 min)')
    parser.add_argument('--out', default=str(BENCH / 'gpu_check.json'))
    parser.add_argument('--steps', type=int, default=None, help='timed steps per side')
    return parser.parse_args(argv)


def sizes(dry: bool) -> dict:
    if dry:
        from domino_seg.domain.clip_generator import TINY_CLIP
        return dict(crop=(56, 112), image=(112, 224), slide=((56, 112), (42, 84)), batch=2,
                    steps=2, warmup=1, clip_images=4, clip_arch=TINY_CLIP, train_iters=6,
                    train_model='segformer_mit_tiny')
    return dict(crop=(512, 1024), image=(1024, 2048), slide=((512, 1024), (341, 682)), batch=2,
                steps=10, warmup=3, clip_images=64, clip_arch='ViT-B-16', train_iters=50,
                train_model='clip_vit_b16_upernet')


def build(model: str, domino: str, size: dict, dry: bool, device):
    overrides = [f'model={model}', 'model.pretrained=null', f'domino={domino}', *DOMAIN,
                 f'data.crop_size=[{size["crop"][0]},{size["crop"][1]}]']
    if dry:
        overrides += TINY[model] + TINY_HEADS
    cfg = domino_seg.compose(overrides)
    torch.manual_seed(0)
    return domino_seg.build_segmentor(cfg).to(device), cfg


def optim_wrapper(model, cfg, precision: str, device):
    """train.py's optimizer (the model group's AdamW + paramwise_cfg); bf16 through mmengine's
    AmpOptimWrapper on a GPU, CPU autocast in a dry run (mmengine's AMP is GPU-only)."""
    from contextlib import nullcontext

    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper

    from domino_seg.models import builder
    wrapper_cfg = builder.optim_wrapper_cfg(cfg.model)
    if precision == 'bf16' and device.type == 'cuda':
        wrapper_cfg = dict(wrapper_cfg, type='AmpOptimWrapper', dtype='bfloat16')
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # paramwise_cfg logs lines per parameter
    try:
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    finally:
        logger.setLevel(level)
    cpu_bf16 = precision == 'bf16' and device.type == 'cpu'
    return wrapper, (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if cpu_bf16 else \
        nullcontext


def peak_mb(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == 'cuda' else None


def train_steps(model_name: str, size: dict, dry: bool, device) -> dict:
    """Baseline and domino=full, fp32 and bf16: four sides interleaved (ABBA) in one run."""
    models = {d: build(model_name, d, size, dry, device) for d in ('none', 'full')}
    dim = models['full'][0].domain_encoder[0].in_features if hasattr(
        models['full'][0], 'domain_encoder') else 512
    args = argparse.Namespace(height=size['crop'][0], width=size['crop'][1],
                              batch_size=size['batch'], seed=0)
    batches = timing.Batches(args, dim)
    sides, memory = {}, {}
    for domino, (model, cfg) in models.items():
        model.train()
        for precision in ('fp32', 'bf16'):
            wrapper, context = optim_wrapper(model, cfg, precision, device)

            def prepare(i, model=model, wrapper=wrapper, context=context):
                data = batches.packed(i)

                def step():
                    with context():
                        model.train_step(data, wrapper)
                return step
            name = f'{domino}/{precision}'
            sides[name] = prepare
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            prepare(0)()
            timing._sync(device)
            memory[name] = peak_mb(device)
    times = timing.interleaved(sides, size['steps'], size['warmup'], 1, device)
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    return dict(step_ms=median, peak_memory_mb=memory,
                domino_over_baseline=dict(fp32=median['full/fp32'] / median['none/fp32'],
                                          bf16=median['full/bf16'] / median['none/bf16']),
                bf16_speedup=dict(baseline=median['none/fp32'] / median['none/bf16'],
                                  domino=median['full/fp32'] / median['full/bf16']))


def inference(model_name: str, size: dict, dry: bool, device) -> dict:
    """ms per image of ``size['image']`` with domino=full: whole image and sliding window."""
    from mmengine.config import ConfigDict
    model, _ = build(model_name, 'full', size, dry, device)
    model.eval()
    dim = model.domain_encoder[0].in_features
    h, w = size['image']
    args = argparse.Namespace(height=h, width=w, batch_size=1, seed=0)
    batches = timing.Batches(args, dim, n=2)
    (ch, cw), (sh, sw) = size['slide']
    out = {}
    for mode, test_cfg in (('whole', dict(mode='whole')),
                           ('slide', dict(mode='slide', crop_size=(ch, cw), stride=(sh, sw)))):
        model.test_cfg = ConfigDict(test_cfg)

        def prepare(i):
            data = batches.packed(i)

            def step():
                with torch.no_grad():
                    model.test_step(data)
            return step
        times = timing.interleaved({mode: prepare}, size['steps'], size['warmup'], 1, device)
        out[f'{mode}_ms'] = statistics.median(times[mode]) * 1e3
    return out


def clip_throughput(size: dict, device) -> dict:
    """Images per second of CLIP image embeddings (random ViT-B/16 weights), one batch, as
    training computes them in its data preprocessor: the images prepared for CLIP (a data
    worker's part, untimed), then CLIP and the zero-shot mix on ``device``."""
    from mmseg.registry import TRANSFORMS

    from domino_seg.domain.embedder import DomainEmbedder, inputs_transform_cfg
    generator_cfg = dict(arch=size['clip_arch'], pretrained=None, mode='zero_shot')
    embedder = DomainEmbedder(generator_cfg)
    prepare = TRANSFORMS.build(inputs_transform_cfg(generator_cfg))
    gen = np.random.default_rng(0)
    prepared = [prepare(dict(img=gen.integers(0, 256, (*size['crop'], 3), dtype=np.uint8)))
                for _ in range(size['clip_images'])]
    embedder(prepared[:2], torch.device(device))  # build and warm up
    timing._sync(device)
    start = time.perf_counter()
    embeddings = embedder(prepared, torch.device(device))
    timing._sync(device)
    seconds = time.perf_counter() - start
    return dict(images=len(prepared), images_per_s=len(prepared) / seconds,
                embed_dim=int(embeddings.shape[1]))


def relative_max_diffs(tested: list, reference: list) -> list:
    """max |tested - reference| / max |reference| for each pair of tensors."""
    return [(a.float() - b.float()).abs().max().item() / max(b.float().abs().max().item(), 1e-12)
            for a, b in zip(tested, reference)]


def modulation_gradients(device) -> dict:
    """Domino's per-sample modulation (``PerSampleAffine``, ATen's batch-norm backward per
    sample) against autograd's ``addcmul`` on the device: the largest differences of the
    output and of the three gradients, per dtype and memory layout, and whether they are
    within the dtype's rounding; then the same for :func:`batch_norm_modulation`."""
    from domino_seg.models.domino_norm import PerSampleAffine
    report = {}
    gen = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 5e-2)):
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(4, 64, 32, 48, generator=gen).to(device, dtype)
            x = x.to(memory_format=layout).requires_grad_()
            scale = (1 + 0.1 * torch.randn(4, 64, 1, 1, generator=gen)).to(device)
            shift = (0.1 * torch.randn(4, 64, 1, 1, generator=gen)).to(device)
            grad = torch.randn(4, 64, 32, 48, generator=gen).to(device, dtype)
            results = []
            for fused in (True, False):
                leaves = [t.detach().clone().requires_grad_() for t in (x, scale, shift)]
                out = (PerSampleAffine.apply(*leaves, 1) if fused else
                       torch.addcmul(leaves[2], leaves[0], leaves[1]).to(dtype))
                out.backward(grad)
                results.append([out.float()] + [t.grad.float() for t in leaves])
            diffs = relative_max_diffs(*results)
            memory = 'channels_last' if layout is torch.channels_last else 'contiguous'
            report[f'{str(dtype).split(".")[1]} {memory}'] = dict(
                relative_max_diff=dict(zip(('out', 'x', 'scale', 'shift'), diffs)),
                ok=max(diffs) <= tol)
    report.update(batch_norm_modulation(device, gen))
    return report


def batch_norm_modulation(device, gen: torch.Generator) -> dict:
    """A training-mode BN and Domino's modulation as one ``ModulatedBatchNorm`` (float32 maps)
    against the Domino formula on BN's output under autograd: output, gradients of the map, of
    BN's weight and bias and of the modulation, and the running statistics, per memory layout."""
    from domino_seg.models.domino_norm import ModulatedBatchNorm
    report = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(4, 64, 32, 48, generator=gen).mul(2).add(1).to(device)
        x = x.to(memory_format=layout)
        modulation = (0.1 * torch.randn(4, 128, generator=gen)).to(device)
        grad = torch.randn(4, 64, 32, 48, generator=gen).to(device)
        affine = torch.rand(2, 64, generator=gen) + torch.tensor([[0.5], [-0.5]])
        results = []
        for fused in (True, False):
            norm = torch.nn.BatchNorm2d(64).to(device)
            with torch.no_grad():
                norm.weight.copy_(affine[0]), norm.bias.copy_(affine[1])
            leaves = [t.detach().clone().requires_grad_() for t in (x, modulation)]
            if fused:
                out = ModulatedBatchNorm.apply(leaves[0], norm.weight, norm.bias, leaves[1],
                                               norm.running_mean, norm.running_var,
                                               norm.momentum, norm.eps)
            else:  # y * (1 + d_scale) + d_shift - beta0 * d_scale
                d_scale, d_shift = (t[..., None, None] for t in leaves[1].chunk(2, dim=1))
                out = (norm(leaves[0]) * (1 + d_scale) + d_shift -
                       norm.bias[:, None, None] * d_scale)
            out.backward(grad)
            results.append([out, leaves[0].grad, norm.weight.grad, norm.bias.grad,
                            leaves[1].grad, norm.running_mean, norm.running_var])
        diffs = relative_max_diffs(*results)
        memory = 'channels_last' if layout is torch.channels_last else 'contiguous'
        report[f'batch_norm float32 {memory}'] = dict(
            relative_max_diff=dict(zip(('out', 'x', 'weight', 'bias', 'modulation',
                                        'running_mean', 'running_var'), diffs)),
            ok=max(diffs) <= 1e-4)
    return report


def short_training(size: dict, dry: bool) -> dict:
    """tools/train.py for a few iterations on a small built-in benchmark: the loss must fall."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f'model={size["train_model"]}', 'model.pretrained=null',
                     f'paths.synthetic={tmp}/synthetic', f'work_dir={tmp}/run',
                     'data.generate.num_train=16', 'data.generate.num_val=4',
                     f'schedule.max_iters={size["train_iters"]}',
                     f'schedule.val_interval={size["train_iters"]}', 'schedule.warmup_iters=5',
                     'schedule.batch_size=4', 'log_interval=1', 'data.eval_conditions=[cityscapes]',
                     'data.num_workers=2']
        if dry:
            overrides += ['data.generate.height=64', 'data.generate.width=128',
                          'data.img_scale=[128,64]', 'data.crop_size=[64,128]',
                          'schedule.batch_size=2', 'data.num_workers=0']
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(BENCH.parent / 'tools' / 'train.py'),
                                 *overrides], capture_output=True, text=True)
        if result.returncode != 0:
            return dict(ok=False, error=result.stderr[-2000:])
        scalars = next(Path(tmp, 'run').glob('*/vis_data/scalars.json'))
        losses = [json.loads(line)['loss'] for line in scalars.read_text().splitlines()
                  if '"loss"' in line]
        k = max(1, len(losses) // 5)
        first, last = statistics.mean(losses[:k]), statistics.mean(losses[-k:])
        return dict(ok=last < first, iterations=len(losses), first_loss=first, last_loss=last,
                    seconds=time.perf_counter() - start)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device('cpu' if args.dry_run or not torch.cuda.is_available() else 'cuda')
    if device.type == 'cpu' and not args.dry_run:
        raise SystemExit('no GPU here: run on a GPU, or with --dry-run to check that it runs')
    size = sizes(args.dry_run)
    if args.steps:
        size['steps'] = args.steps
    start = time.perf_counter()
    report = dict(date=time.strftime('%Y-%m-%d'), dry_run=args.dry_run,
                  device=torch.cuda.get_device_name(device) if device.type == 'cuda' else
                  platform.processor() or 'cpu', torch=torch.__version__, sizes=size)
    for name in MODELS:
        print(f'{name}: train steps ...', flush=True)
        report[name] = dict(train=train_steps(name, size, args.dry_run, device))
        print(f'{name}: inference ...', flush=True)
        report[name]['inference'] = inference(name, size, args.dry_run, device)
    print('Domino modulation gradients ...', flush=True)
    report['modulation'] = modulation_gradients(device)
    print('CLIP embeddings ...', flush=True)
    report['clip'] = clip_throughput(size, device)
    print('short training ...', flush=True)
    report['training'] = short_training(size, args.dry_run)
    report['seconds'] = time.perf_counter() - start
    text = json.dumps(report, indent=2)
    Path(args.out).write_text(text + '\n')
    print(text)
    return report


if __name__ == '__main__':
    main()
