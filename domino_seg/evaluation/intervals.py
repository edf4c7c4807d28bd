"""How sure a difference to the baseline is (``tools/compare.py``).

Seeds: the paired t-interval of the per-seed differences, the smallest difference that many
seeds detect at 80 % power, and the seeds a ±1 mIoU interval needs. Single runs: a per-image
bootstrap of the mIoU difference from each run's ``per_image.npz`` (``evaluator.per_image``).
"""
from __future__ import annotations

import math
import statistics
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy import optimize, stats

from domino_seg.errors import DataError
from domino_seg.evaluation.metrics import PER_IMAGE_FILE

ALPHA = 0.05           # two-sided: 95 % intervals
POWER = 0.8
BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_SEED = 0
MIOU_TOLERANCE = 0.01  # mIoU points: metrics.json sums areas in float32, the record in int64


@dataclass
class Interval:
    """A difference to the baseline and its 95 % interval (None: undefined), over ``n`` paired
    seeds (``std``: their sample standard deviation) or, bootstrapped, ``n`` images."""
    mean: Optional[float]
    low: Optional[float] = None
    high: Optional[float] = None
    n: int = 0
    std: Optional[float] = None

    @property
    def verdict(self) -> str:
        if self.mean is None:
            return '-'
        if self.low is None:
            return f'{self.n} pair: no interval' if self.n == 1 else 'no interval'
        if self.low > 0:
            return 'better'
        if self.high < 0:
            return 'worse'
        return 'not distinguishable'


def t_interval(differences: Sequence[Optional[float]]) -> Interval:
    """Mean of the paired differences (None left out) and its t-interval,
    mean ± t(1 − α/2, n − 1) · sd / √n; no interval for a single pair."""
    values = [v for v in differences if v is not None]
    if not values:
        return Interval(None)
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Interval(mean, n=1)
    n, sd = len(values), statistics.stdev(values)
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


def detectable_difference(sd: float, n: int) -> Optional[float]:
    """The smallest true mean difference δ that a two-sided paired t-test at level α on ``n``
    pairs detects with probability ``POWER``, when the differences have standard deviation
    ``sd``. The test statistic then follows a noncentral t with n − 1 degrees of freedom and
    noncentrality λ = δ √n / sd, so δ solves

        1 − F(t*; n − 1, λ) + F(−t*; n − 1, λ) = POWER,  t* = t(1 − α/2, n − 1)

    (F: scipy.stats.nct's CDF; the lower tail as F(−t*; ν, λ) = 1 − F(t*; ν, −λ), which
    scipy evaluates without the NaN its CDF gives far in that tail), found with
    scipy.optimize.brentq. None for fewer than two pairs or sd = 0."""
    if n < 2 or not sd > 0:
        return None
    df = n - 1
    critical = stats.t.ppf(1 - ALPHA / 2, df)

    def shortfall(delta: float) -> float:
        nc = delta * math.sqrt(n) / sd
        return stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc) - POWER

    high = sd
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12))


def seeds_for_half_width(sd: float, half_width: float = 1.0) -> Optional[int]:
    """The fewest paired seeds whose 95 % t-interval is ± ``half_width`` or narrower at this
    ``sd``: the smallest n >= 2 with t(1 − α/2, n − 1) · sd / √n <= half_width (searched
    upwards from the normal approximation, which never overshoots). None when sd = 0."""
    if not sd > 0:
        return None
    n = max(2, math.ceil((stats.norm.ppf(1 - ALPHA / 2) * sd / half_width) ** 2))
    while stats.t.ppf(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
    return n


def pooled_std(intervals: Sequence[Interval]) -> tuple[Optional[float], int]:
    """The pooled standard deviation of paired differences over several conditions,
    √(Σ (nᵢ − 1) sᵢ² / Σ (nᵢ − 1)), and the fewest pairs among them; (None, 0) without any
    condition of two pairs or more."""
    usable = [i for i in intervals if i.std is not None]
    if not usable:
        return None, 0
    dof = sum(i.n - 1 for i in usable)
    return math.sqrt(sum((i.n - 1) * i.std ** 2 for i in usable) / dof), min(i.n for i in usable)


def miou(intersect: np.ndarray, union: np.ndarray) -> np.ndarray:
    """mIoU (%) as mmseg's IoUMetric computes it from summed areas (last axis: classes): the
    mean over classes present (union > 0) of intersection / union; NaN with none present
    (e.g. a resample of images whose pixels are all ignored)."""
    present = union > 0
    iou = np.divide(intersect, union, out=np.zeros(union.shape), where=present)
    with np.errstate(invalid='ignore', divide='ignore'):
        return 100.0 * iou.sum(-1) / present.sum(-1)


@dataclass
class ImageAreas:
    """One run's per-image record, by condition: image paths (sorted) and their per-class
    intersection and union (rows in the order of the paths)."""
    path: Path
    classes: list
    conditions: dict  # condition -> (images, intersect, union)


def read_image_areas(work_dir: str, mious: dict) -> Optional[ImageAreas]:
    """``per_image.npz`` of a run (None when absent), checked: the arrays domino-seg writes,
    one line per image, and the mIoU of each condition equal to ``mious`` (its metrics.json),
    so a record left from another evaluation is never used."""
    path = Path(work_dir) / PER_IMAGE_FILE
    if not path.is_file():
        return None
    fix = ('evaluate the checkpoint again with tools/test.py evaluator.per_image=true (it '
           'rewrites both files), or delete it')
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ('classes', 'images', 'conditions', 'intersect',
                                                'union')}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f'{path} is not a per-image record written by domino-seg ({err}); '
                        f'{fix}.') from None
    images, conditions, inter, union = (arrays[k] for k in ('images', 'conditions',
                                                            'intersect', 'union'))
    classes = arrays['classes']
    shape = (len(images), len(classes))
    if not (images.ndim == conditions.ndim == classes.ndim == 1 and images.dtype.kind == 'U'
            and conditions.dtype.kind == 'U' and len(conditions) == len(images)
            and inter.shape == union.shape == shape and inter.dtype.kind in 'iu'
            and union.dtype.kind in 'iu' and (inter >= 0).all() and (inter <= union).all()):
        raise DataError(f'{path} does not hold one line of per-class pixel counts per image '
                        f'(0 <= intersect <= union); {fix}.')
    keys = list(zip(conditions.tolist(), images.tolist()))
    if len(set(keys)) < len(keys):
        raise DataError(f'{path} lists an image of a condition twice; {fix}.')
    by_condition = {}
    for condition in dict.fromkeys(conditions.tolist()):
        rows = np.flatnonzero(conditions == condition)
        rows = rows[np.argsort(images[rows], kind='stable')]
        by_condition[condition] = (images[rows], inter[rows].astype(np.int64),
                                   union[rows].astype(np.int64))
    for condition, recorded in mious.items():
        areas = by_condition.get(condition)
        value = None if areas is None else float(miou(areas[1].sum(0), areas[2].sum(0)))
        if recorded is not None and (value is None or abs(value - recorded) > MIOU_TOLERANCE):
            raise DataError(
                f'{path} is not from the evaluation its metrics.json records: {condition} '
                f'mIoU {recorded:.4f} there, {"absent" if value is None else f"{value:.4f}"} '
                f'here; {fix}.')
    return ImageAreas(path, classes.tolist(), by_condition)


def bootstrap(run: ImageAreas, base: ImageAreas, conditions: Sequence[str],
              unseen: Sequence[str], mean_key: str, draws: int = BOOTSTRAP_DRAWS,
              seed: int = BOOTSTRAP_SEED) -> dict:
    """Per-image bootstrap of the mIoU difference ``run`` − ``base``: for each condition (in
    the order given; one generator seeded ``seed``), ``draws`` resamples of its images with
    replacement, the same images for both runs (paired by path); a resample's mIoU is that of
    its summed areas (:func:`miou`). Condition -> Interval (mean: the difference on all
    images; interval: the 2.5 and 97.5 percentiles of the resampled differences), and for
    ``mean_key`` the mean over ``unseen`` of the same draws' differences (when all have
    records)."""
    if run.classes != base.classes:
        raise DataError(f'{run.path} and {base.path} score different classes; compare runs '
                        'of one dataset.')
    rng = np.random.default_rng(seed)
    out, resampled = {}, {}
    for condition in conditions:
        if condition not in run.conditions and condition not in base.conditions:
            continue
        images, inter, union = run.conditions.get(condition, _NONE)
        base_images, base_inter, base_union = base.conditions.get(condition, _NONE)
        if not np.array_equal(images, base_images):
            raise _different_images(run.path, base.path, condition, images, base_images)
        n = len(images)
        counts = np.zeros((draws, n), dtype=np.int64)
        np.add.at(counts, (np.arange(draws)[:, None], rng.integers(0, n, size=(draws, n))), 1)
        resampled[condition] = (miou(counts @ inter, counts @ union) -
                                miou(counts @ base_inter, counts @ base_union))
        full = float(miou(inter.sum(0), union.sum(0)) - miou(base_inter.sum(0),
                                                             base_union.sum(0)))
        out[condition] = _percentile_interval(full, resampled[condition], n)
    if unseen and all(c in resampled for c in unseen):
        mean = statistics.fmean(out[c].mean for c in unseen)
        out[mean_key] = _percentile_interval(
            mean, np.mean([resampled[c] for c in unseen], axis=0),
            sum(out[c].n for c in unseen))
    return out


_NONE = (np.array([], dtype=str), None, None)  # a condition a record lacks


def _percentile_interval(mean: float, draws: np.ndarray, n: int) -> Interval:
    """The percentiles of the draws whose mIoU is defined (NaN: no class present)."""
    low, high = np.nanpercentile(draws, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return Interval(mean, float(low), float(high), n)


def _different_images(path: Path, base: Path, condition: str, images, base_images) -> DataError:
    only, only_base = (sorted(set(a.tolist()) - set(b.tolist()))
                       for a, b in ((images, base_images), (base_images, images)))
    example = f' (e.g. {(only or only_base)[0]})' if only or only_base else ''
    return DataError(
        f'the per-image bootstrap pairs images, but {path} and {base} record different '
        f'{condition} images: {len(only)} only in the first, {len(only_base)} only in the '
        f'second{example}. Evaluate both checkpoints on the same data with tools/test.py '
        'evaluator.per_image=true, or move one per_image.npz away to compare without it.')
