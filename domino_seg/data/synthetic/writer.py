"""Write the synthetic benchmark in the real Cityscapes and ACDC on-disk layouts.

Clear scenes go to ``cityscapes/`` (images, trainId and labelId maps, disparity so depth is
recoverable for weather augmentation), adverse scenes (any weather preset) to
``acdc/<condition>/``; ``val_only`` conditions are rendered in the val split only, so a
protocol can hold them out of training. Optionally the
clear training scenes are also rendered in other conditions as a *generated* set in the layout
a layout-to-image model writes (ALDM: ``generated/cityscapes_<condition>/<city>_<seq>_<frame>.png``,
paired with the Cityscapes train labels by name). Every sample is
seeded by (seed, split, condition, index), so it does not depend on what else is generated or
in which order.

A folder is the generator's only if it carries the manifest the generator wrote
(``synthetic.json``); nothing else is ever replaced or removed. A benchmark is written into a
staging folder beside its place (``.<name>.partial-*``, manifest first, completed last) and
swapped in by renames (the old one aside to ``.<name>.old-*``, the new one in, then the old
one removed), under a lock (``.<name>.lock`` beside it) that one writer at a time holds: an
interrupted generation leaves the old benchmark whole, and the next one cleans up after a
``kill -9``.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from glob import escape, glob
from pathlib import Path

import cv2
import numpy as np

from domino_seg import console
from domino_seg.errors import DataError
from domino_seg.io import atomic_write_json, lock_file, release_lock_file

from .geometry import SKY_DEPTH
from .scene import render_scene
from .weather import CONDITIONS, PRESETS, render_weather

GENERATOR_VERSION = 3      # bump whenever scenes or weather change, so old benchmarks mismatch
MANIFEST = 'synthetic.json'
GENERATOR = 'domino_seg.data.synthetic'   # the manifest's mark of a folder this code wrote
WRITTEN = ('cityscapes', 'acdc', 'generated', MANIFEST)  # what a benchmark folder holds
ADVERSE = CONDITIONS[1:]                # the default conditions: ACDC's four
# the order seeds the samples; CONDITIONS is its prefix, so the default benchmark keeps its bytes
SEED_ORDER = tuple(PRESETS)
RENDERABLE = SEED_ORDER[1:]             # every condition the benchmark can hold
SPLITS = ('train', 'val')
CITIES = {'train': ('synthtown', 'pixelburg'), 'val': ('renderdorf',)}
ACDC_SEQUENCES = 2                      # GOPR sequences per condition and split
CITYSCAPES_BASELINE = 0.209313          # metres
CITYSCAPES_FOCAL = 2262.52              # pixels at 2048 px width

CHUNK = 8                               # samples a generation worker writes per task
PR_SET_PDEATHSIG = 1                    # prctl option (Linux): a signal when the parent ends

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
                    overwrite: bool = False, workers: int = 2) -> Path:
    """Generate the benchmark into `out_dir` (a no-op when it is already complete with the
    same parameters) and return its path. ``conditions``: any weather presets but clear
    (``RENDERABLE``), each with a train and a val split, except the ``val_only`` ones (val
    only: held out from training). ``generated`` conditions add a generated set of the clear
    training scenes in those conditions (see :func:`generated_folder`).

    A new or empty `out_dir` is written; a benchmark this generator wrote (incomplete, or with
    other parameters) only with `overwrite`; any other folder is refused (DataError), and so
    is ValueError for bad parameters. SIGTERM, like Ctrl-C, stops a generation cleanly.
    ``workers`` processes (at most one per CPU core) render it; the bytes do not depend on it.
    """
    given = Path(out_dir).absolute()
    out = Path(os.path.realpath(given))  # (through a link to the benchmark: where it is)
    params = _params(num_train, num_val, height, width, seed, conditions, generated, val_only)
    if benchmark_is_complete(out, **params):
        if _leftovers(out, 'partial') or _leftovers(out, 'old'):
            with contextlib.suppress(OSError), _locked(out, wait=False) as locked:
                if locked:
                    _recover(out)
        return given
    made = [folder for folder in (out.parent, *out.parent.parents) if not folder.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with _locked(out, wait=True, progress=progress):
            _recover(out)
            if not benchmark_is_complete(out, **params):  # (or another process wrote it)
                _check_replaceable(out, params, overwrite)
                if progress:  # (a mistyped folder shows at once: Ctrl-C keeps nothing)
                    state = ('a new folder' if not out.exists() else 'an empty folder'
                             if not any(out.iterdir()) else 'replacing the incomplete or '
                             'differently generated one there')
                    print(f'Generating the synthetic weather benchmark in {given} ({state}) '
                          '...', flush=True)
                with _sigterm_raises():
                    _generate(out, params, progress, min(workers, os.cpu_count() or 1))
    except BaseException as err:
        for folder in made:  # (inner first) the folders made for it, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(err, OSError) and not isinstance(err, DataError):
            raise DataError(f'the synthetic benchmark cannot be written into {out} ({err}); '
                            'nothing of it was kept, and a benchmark already there is '
                            'unchanged. Free space, or choose another (writable) folder for '
                            'it.') from None
        raise
    return given


@contextlib.contextmanager
def _locked(out: Path, wait: bool, progress: bool = False):
    """Hold the lock of the benchmark at `out` (a file beside it, removed after); yields
    whether it is held (always, with `wait`, which says when another process generates it
    meanwhile)."""
    path = out.parent / f'.{out.name}.lock'
    fd = lock_file(path)
    if fd is None and wait:
        if progress:
            print(f'Waiting for another process that generates the synthetic benchmark in '
                  f'{out} ...', file=sys.stderr, flush=True)
        fd = lock_file(path, wait=True)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            release_lock_file(path, fd)


def _leftovers(out: Path, kind: str) -> list[Path]:
    """The staging (``kind='partial'``) or set-aside (``'old'``) folders of `out` that the
    generator wrote (marked by its manifest), as an interrupted generation leaves them."""
    pattern = escape(str(out.parent / f'.{out.name}.{kind}-')) + '*'
    return sorted(path for path in map(Path, glob(pattern)) if _manifest(path) is not None)


def _manifest(folder: Path) -> dict | None:
    """The generator's manifest in `folder`, or None when the folder is not the generator's."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get('generator') == GENERATOR \
        else None


def _recover(out: Path) -> None:
    """Under the lock, finish what an interrupted generation left: its staging folders go;
    the old benchmark it set aside comes back where none is now, and goes where a new one was
    swapped in."""
    for staging in _leftovers(out, 'partial'):
        shutil.rmtree(staging)
    for old in _leftovers(out, 'old'):
        if not os.path.lexists(out):
            os.rename(old, out)
        elif _manifest(out) is not None:
            shutil.rmtree(old)


def _check_replaceable(out: Path, params: dict, overwrite: bool) -> None:
    """A DataError unless `out` is new, empty, or (with `overwrite`) a benchmark this
    generator wrote that holds nothing else."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise DataError(f'{out} exists and is not a folder; choose a new or empty folder for '
                        'the synthetic benchmark.')
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    manifest = _manifest(out)
    foreign = [name for name in names if name not in WRITTEN]
    if manifest is None or foreign:
        shown = foreign if manifest else names
        listed = ', '.join(shown[:5]) + (', ...' if len(shown) > 5 else '')
        raise DataError(
            f'{out} is not a synthetic benchmark that domino-seg generated (' +
            (f'it holds {listed}, which the generator does not write' if manifest else
             f'it has no {MANIFEST} from the generator and holds {listed}') +
            '), so nothing in it is replaced or removed. Choose a new or empty folder for the '
            'benchmark (or move those files away).')
    if not overwrite:
        raise DataError(
            f'{out} holds a synthetic benchmark that is incomplete or was generated with '
            f'other parameters ({manifest.get("params")}; requested {params}). Pass '
            'overwrite=true to regenerate it there, or choose another folder.')


def _generate(out: Path, params: dict, progress: bool, workers: int) -> None:
    """Write the benchmark into a staging folder beside `out`, then swap it in: the old one
    (if any) aside, the new one in, the old one removed."""
    staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
    manifest = dict(generator=GENERATOR, version=GENERATOR_VERSION, params=params)
    aside = None
    try:
        atomic_write_json(staging / MANIFEST, dict(manifest, complete=False))  # marks it ours
        _write_samples(staging, params, progress, workers)
        atomic_write_json(staging / MANIFEST, dict(manifest, counts=_counts(params),
                                                   cities=CITIES))
        if out.is_dir() and any(out.iterdir()):
            aside = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
            os.rename(out, aside)
        elif out.is_dir():
            out.rmdir()
        os.rename(staging, out)
    except BaseException:
        if aside is not None and not os.path.lexists(out):
            os.rename(aside, out)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)  # (else the next generation removes it)


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM (a job scheduler, ``kill``) ends the process as Ctrl-C does, by an exception
    (SystemExit 143), so a generation removes its staging folder; only where SIGTERM has its
    default action and in the main thread (the only one that handles signals)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _write_samples(root: Path, params: dict, progress: bool, workers: int) -> None:
    """Render and write every sample, in chunks over `workers` processes: the same bytes for
    any `workers` (each sample is seeded by its own indices)."""
    per_split = {'train': params['num_train'], 'val': params['num_val']}
    jobs = [(split, 'clear', i) for split in SPLITS for i in range(per_split[split])]
    jobs += [(split, cond, i) for cond in params['conditions'] for split in SPLITS
             for i in range(_splits(params, cond)[split])]
    jobs += [('generated', cond, i) for cond in params.get('generated', [])
             for i in range(params['num_train'])]
    chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        _show(progress, (_write_chunk(root, params, chunk) for chunk in chunks), len(jobs))
        return
    # fork: the workers start at once, without importing anything again
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('fork'),
                               initializer=_worker_start)
    try:
        futures = [pool.submit(_write_chunk, root, params, chunk) for chunk in chunks]
        _show(progress, (future.result() for future in futures), len(jobs))
    finally:  # (on an error or Ctrl-C, after the chunks being written: then the
        pool.shutdown(wait=True, cancel_futures=True)  # staging folder is removed)


def _show(progress: bool, written, total: int) -> None:
    """Consume ``written`` (the image count of each chunk as it is done), with the progress of
    the images if ``progress``."""
    ticks = (image for count in written for image in range(count))
    for _ in (console.progress(ticks, 'synthetic benchmark', 'img', total=total) if progress
              else ticks):
        pass


def _worker_start() -> None:
    """A generation worker: Ctrl-C is the main process's to handle (it stops the pool), and
    the worker ends with the main process, even by ``kill -9`` (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _write_chunk(root: Path, params: dict, chunk: list) -> int:
    """Write the samples ``chunk`` names; how many."""
    size = (params['height'], params['width'])
    for split, condition, index in chunk:
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
    return len(chunk)


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
