#!/usr/bin/env python
"""tools/embed_domains.py throughput: images per second before and after batching, side by
side in one run, on the same images (fresh caches): one image per CLIP forward in the main
process (as the tool did) against ``--batch-size`` images per forward with ``--workers``
DataLoader workers decoding. CLIP ViT-B/16 with random weights (zero_shot), the images of the
built-in benchmark's size unless given.

    python bench/embed_throughput.py                      # ~1 min on 2 CPU cores
    python bench/embed_throughput.py --images 256 --height 512 --width 1024 --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import domino_seg  # noqa: E402,F401  (compat fixes before mmseg)
from domino_seg.domain import precompute_embeddings  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=48)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--arch', default='ViT-B-16')
    parser.add_argument('--device', default=None, help='default: a GPU if there is one')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        img_dir = Path(tmp, 'img')
        img_dir.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.images):
            Image.fromarray(rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
                            ).save(img_dir / f'{i:04d}.png')
        dataset = dict(type='BaseSegDataset', data_root=tmp, img_suffix='.png',
                       data_prefix=dict(img_path='img', seg_map_path='img'),
                       metainfo=dict(classes=('a',)))
        generator = dict(mode='zero_shot', arch=args.arch, pretrained=None)
        runs = {}
        for name, batch, workers in (('before', 1, 0), ('after', args.batch_size, args.workers)):
            stats = precompute_embeddings(
                [dataset], dict(generator=generator, cache_dir=str(Path(tmp, f'cache_{name}'))),
                progress=False, batch_size=batch, num_workers=workers, device=args.device)
            assert stats['computed'] == args.images
            runs[name] = dict(batch_size=batch, workers=workers,
                              images_per_s=stats['images_per_s'], device=stats['device'])
    report = dict(images=args.images, size=[args.height, args.width], arch=args.arch, **runs,
                  speedup=runs['after']['images_per_s'] / runs['before']['images_per_s'])
    for name in ('before', 'after'):
        run = runs[name]
        print(f'{name:6s} batch {run["batch_size"]:3d}, {run["workers"]} workers: '
              f'{run["images_per_s"]:7.2f} images/s ({run["device"]})')
    print(f'speedup (after / before): {report["speedup"]:.2f}')
    print(json.dumps(report))
    return report


if __name__ == '__main__':
    main()
