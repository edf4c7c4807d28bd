"""Write the synthetic benchmark in the real Cityscapes and ACDC on-disk layouts.

Clear scenes go to ``cityscapes/`` (images, trainId and labelId maps, disparity so depth is
recoverable for weather augmentation), adverse scenes (any weather preset) to
``acdc/<condition>/``; ``val_only`` conditions are rendered in the val split only, so a
protocol can hold them out of training. Optionally the
clear training scenes are also rendered in other conditions as a *generated* set in the layout
a layout-to-image model writes (ALDM: ``generated/cityscapes_<condition>/<city>_<seq>_<frame>.png``,
paired with the Cityscapes train labels by name). Every sample is
seeded by (seed, split, condition, index), so it does not depend on what else is generated or
in which order. The benchmark is written to a temporary sibling folder and renamed into place
with its manifest last, so a half-written folder is never taken for a complete one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .geometry import SKY_DEPTH
from .scene import render_scene
from .weather import CONDITIONS, PRESETS, render_weather

GENERATOR_VERSION = 3      # bump whenever scenes or weather change, so old benchmarks mismatch
MANIFEST = 'synthetic.json'
ADVERSE = CONDITIONS[1:]                # the default conditions: ACDC's four
# the order seeds the samples; CONDITIONS is its prefix, so the default benchmark keeps its bytes
SEED_ORDER = tuple(PRESETS)
RENDERABLE = SEED_ORDER[1:]             # every condition the benchmark can hold
SPLITS = ('train', 'val')
CITIES = {'train': ('synthtown', 'pixelburg'), 'val': ('renderdorf',)}
ACDC_SEQUENCES = 2                      # GOPR sequences per condition and split
CITYSCAPES_BASELINE = 0.209313          # metres
CITYSCAPES_FOCAL = 2262.52              # pixels at 2048 px width

TRAIN_ID_TO_ID = np.zeros(256, np.uint8)    # 255 (ignore) -> 0 (unlabeled)
TRAIN_ID_TO_ID[:19] = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def depth_to_disparity_png(depth: np.ndarray) -> np.ndarray:
    """Cityscapes disparity encoding (uint16 p = disparity * 256 + 1; 0 = invalid) for the
    Cityscapes stereo rig scaled to this image width."""
    focal = CITYSCAPES_FOCAL * depth.shape[1] / 2048
    disparity = CITYSCAPES_BASELINE * focal / np.maximum(depth, 1e-3)
    return np.clip(np.round(disparity * 256 + 1), 1, 65535).astype(np.uint16)


def disparity_png_to_depth(encoded: np.ndarray, max_depth: float = SKY_DEPTH) -> np.ndarray:
    """Inverse of `depth_to_disparity_png`; invalid or zero disparity (sky in real Cityscapes)
    becomes `max_depth`, and depths are capped there."""
    focal = CITYSCAPES_FOCAL * encoded.shape[1] / 2048
    disparity = (encoded.astype(np.float32) - 1) / 256
    with np.errstate(divide='ignore'):
        depth = np.where(disparity > 0, CITYSCAPES_BASELINE * focal / disparity, max_depth)
    return np.minimum(depth, max_depth).astype(np.float32)


def read_cityscapes_depth(path: str | os.PathLike, max_depth: float = SKY_DEPTH) -> np.ndarray:
    """Depth in metres from a Cityscapes ``*_disparity.png`` (real or synthetic)."""
    encoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if encoded is None or encoded.dtype != np.uint16:
        raise ValueError(f'{path} is not a 16-bit Cityscapes disparity PNG')
    return disparity_png_to_depth(encoded, max_depth)


def render_sample(seed: int, split: str, condition: str, index: int, height: int,
                  width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, trainId label, depth) of one benchmark sample, independent of all others."""
    rng = np.random.default_rng([seed, SPLITS.index(split), SEED_ORDER.index(condition), index])
    scene = render_scene(height, width, rng)
    image = render_weather(scene.image, scene.depth, condition, rng, label=scene.label,
                           lights=scene.lights)
    return image, scene.label, scene.depth


def cityscapes_stem(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of the index-th clear sample, e.g.
    ('synthtown', 'synthtown_000003_000019')."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f'{city}_{index // len(cities):06d}_000019'


def acdc_stem(split: str, condition: str, index: int) -> tuple[str, str]:
    """(sequence, file stem) of the index-th sample of a condition, e.g.
    ('GOPR0420', 'GOPR0420_frame_000001')."""
    first = 400 + 20 * SEED_ORDER.index(condition) + 10 * SPLITS.index(split)
    sequence = f'GOPR{first + index % ACDC_SEQUENCES:04d}'
    return sequence, f'{sequence}_frame_{index // ACDC_SEQUENCES:06d}'


def _params(num_train, num_val, height, width, seed, conditions, generated=(),
            val_only=()) -> dict:
    conditions, generated, val_only = list(conditions), list(generated), list(val_only)
    unknown = sorted(set(conditions + generated) - set(RENDERABLE))
    if unknown:
        raise ValueError(f'unknown conditions {unknown}; the benchmark renders '
                         f'{", ".join(RENDERABLE)}')
    if sorted(set(conditions)) != sorted(conditions):
        raise ValueError(f'conditions {conditions} names a condition twice')
    if not set(val_only) <= set(conditions):
        raise ValueError(f'val_only {sorted(set(val_only) - set(conditions))} are not among '
                         f'the conditions {conditions}; val_only marks conditions rendered in '
                         'the val split only')
    if min(num_train, num_val) < 0 or min(height, width) < 16:
        raise ValueError('num_train/num_val must be >= 0 and height/width >= 16, got '
                         f'{num_train}, {num_val}, {height}, {width}')
    params = dict(num_train=int(num_train), num_val=int(num_val), height=int(height),
                  width=int(width), seed=int(seed), conditions=conditions)
    # (absent otherwise, so benchmarks written before the options stay valid)
    if generated:
        params['generated'] = generated
    if val_only:
        params['val_only'] = val_only
    return params


def _splits(params: dict, condition: str) -> dict:
    """Images per split of one ACDC-layout condition (no train split when held out)."""
    train = 0 if condition in params.get('val_only', ()) else params['num_train']
    return {'train': train, 'val': params['num_val']}


def _counts(params: dict) -> dict:
    per_split = {'train': params['num_train'], 'val': params['num_val']}
    counts = {'cityscapes': dict(per_split),
              'acdc': {condition: _splits(params, condition)
                       for condition in params['conditions']}}
    if params.get('generated'):
        counts['generated'] = {condition: params['num_train']
                               for condition in params['generated']}
    return counts


def generated_folder(root: str | os.PathLike, condition: str) -> Path:
    """The folder of one generated domain (ALDM's ``<out>_<domain>``)."""
    return Path(root) / 'generated' / f'cityscapes_{condition}'


def benchmark_is_complete(out_dir: str | os.PathLike, num_train: int = 300, num_val: int = 40,
                          height: int = 128, width: int = 256, seed: int = 0,
                          conditions=ADVERSE, generated=(), val_only=()) -> bool:
    """Whether `out_dir` holds a finished benchmark generated with exactly these parameters
    (a ValueError when the generator refuses them)."""
    params = _params(num_train, num_val, height, width, seed, conditions, generated, val_only)
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get('version') != GENERATOR_VERSION or manifest.get('params') != params:
        return False
    return _image_counts(Path(out_dir), params) == _counts(params)


def _image_counts(root: Path, params: dict) -> dict:
    def count(folder: Path, suffix: str) -> int:
        return sum(1 for _ in folder.rglob('*' + suffix)) if folder.is_dir() else 0
    counts = {'cityscapes': {split: count(root / 'cityscapes/leftImg8bit' / split,
                                          '_leftImg8bit.png') for split in SPLITS},
              'acdc': {cond: {split: count(root / 'acdc/rgb_anon' / cond / split,
                                           '_rgb_anon.png')
                              for split in SPLITS} for cond in params['conditions']}}
    if params.get('generated'):
        counts['generated'] = {cond: count(generated_folder(root, cond), '.png')
                               for cond in params['generated']}
    return counts


def write_benchmark(out_dir: str | os.PathLike, num_train: int = 300, num_val: int = 40,
                    height: int = 128, width: int = 256, seed: int = 0,
                    conditions=ADVERSE, generated=(), val_only=(), progress: bool = True,
                    overwrite: bool = False) -> Path:
    """Generate the benchmark into `out_dir` (a no-op when it is already complete with the
    same parameters) and return its path. ``conditions``: any weather presets but clear
    (``RENDERABLE``), each with a train and a val split, except the ``val_only`` ones (val
    only: held out from training). ``generated`` conditions add a generated set of the clear
    training scenes in those conditions (see :func:`generated_folder`).

    An existing, non-empty `out_dir` that is incomplete or was made with other parameters is
    an error unless `overwrite`, which replaces it (only if it looks like a benchmark).
    """
    out = Path(out_dir).absolute()
    params = _params(num_train, num_val, height, width, seed, conditions, generated, val_only)
    if benchmark_is_complete(out, **params):
        return out
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out} exists and is not a folder')
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f'{out} exists but is not a complete synthetic benchmark with the requested '
                f'parameters {params} (see {out / MANIFEST}). Delete it, choose another '
                'folder, or pass overwrite=true to regenerate it.')
        _remove_old_benchmark(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
    try:
        _write_samples(staging, params, progress)
        manifest = dict(generator='domino_seg.data.synthetic', version=GENERATOR_VERSION,
                        params=params, counts=_counts(params), cities=CITIES)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + '\n')
        _move_into_place(staging, out, params)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _remove_old_benchmark(out: Path) -> None:
    """Delete a previous (partial) benchmark; refuse folders holding anything else."""
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name not in ('cityscapes', 'acdc', 'generated', MANIFEST))
    if foreign:
        raise FileExistsError(f'refusing to overwrite {out}: it holds {foreign}, which the '
                              'synthetic benchmark does not write')
    shutil.rmtree(out)


def _move_into_place(staging: Path, out: Path, params: dict) -> None:
    """Rename the finished staging folder to `out`; if a concurrent writer got there first
    with the same benchmark, keep theirs."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    try:
        os.rename(staging, out)
    except OSError:
        if not benchmark_is_complete(out, **params):
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _write_samples(root: Path, params: dict, progress: bool) -> None:
    per_split = {'train': params['num_train'], 'val': params['num_val']}
    jobs = [(split, 'clear', i) for split in SPLITS for i in range(per_split[split])]
    jobs += [(split, cond, i) for cond in params['conditions'] for split in SPLITS
             for i in range(_splits(params, cond)[split])]
    jobs += [('generated', cond, i) for cond in params.get('generated', [])
             for i in range(params['num_train'])]
    size = (params['height'], params['width'])
    for split, condition, index in tqdm(jobs, desc='synthetic benchmark', unit='img',
                                        disable=not progress):
        if split == 'generated':
            image = render_generated(params['seed'], condition, index, *size)
            _imwrite(generated_folder(root, condition) / f'{cityscapes_stem("train", index)[1]}'
                     '.png', image[..., ::-1])
            continue
        image, label, depth = render_sample(params['seed'], split, condition, index, *size)
        if condition == 'clear':
            _write_cityscapes(root / 'cityscapes', split, index, image, label, depth)
        else:
            _write_acdc(root / 'acdc', split, condition, index, image, label)


def render_generated(seed: int, condition: str, index: int, height: int,
                     width: int) -> np.ndarray:
    """The index-th clear training scene (same layout and label as the Cityscapes train
    sample) rendered in ``condition``, as a layout-to-image model would generate it."""
    scene_rng = np.random.default_rng([seed, SPLITS.index('train'), SEED_ORDER.index('clear'),
                                       index])
    scene = render_scene(height, width, scene_rng)
    weather_rng = np.random.default_rng([seed, len(SPLITS), SEED_ORDER.index(condition), index])
    return render_weather(scene.image, scene.depth, condition, weather_rng, label=scene.label,
                          lights=scene.lights)


def _write_cityscapes(root: Path, split: str, index: int, image, label, depth) -> None:
    city, stem = cityscapes_stem(split, index)
    _imwrite(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png', image[..., ::-1])
    gt = root / 'gtFine' / split / city
    _imwrite(gt / f'{stem}_gtFine_labelTrainIds.png', label)
    _imwrite(gt / f'{stem}_gtFine_labelIds.png', TRAIN_ID_TO_ID[label])
    _imwrite(root / 'disparity' / split / city / f'{stem}_disparity.png',
             depth_to_disparity_png(depth))


def _write_acdc(root: Path, split: str, condition: str, index: int, image, label) -> None:
    sequence, stem = acdc_stem(split, condition, index)
    _imwrite(root / 'rgb_anon' / condition / split / sequence / f'{stem}_rgb_anon.png',
             image[..., ::-1])
    gt = root / 'gt' / condition / split / sequence
    _imwrite(gt / f'{stem}_gt_labelTrainIds.png', label)
    _imwrite(gt / f'{stem}_gt_labelIds.png', TRAIN_ID_TO_ID[label])


def _imwrite(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(array)):
        raise OSError(f'could not write {path}')
