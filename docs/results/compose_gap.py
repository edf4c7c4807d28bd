"""Paired difference of two rows of the composition study on the mean mIoU of the held-out
compositions (one number per seed, then a 95 % t-interval over the seeds):

    python docs/results/compose_gap.py ROW_DIR BASELINE_DIR

e.g. work_dirs/results/compose/oracle work_dirs/results/compose/finetune (the oracle gap of
docs/results/PROTOCOL.md B). Each folder holds one run per seed (a sweep dir); runs pair by
their recorded ``seed``. tools/compare.py gives the per-condition intervals; this gives the
interval of the compositions' mean, the number the protocol decides on.
"""
import json
import sys
from pathlib import Path

from domino_seg.evaluation.intervals import seeds_for_half_width, t_interval

COMPOSITIONS = ('foggy_night', 'rainy_night', 'snowy_night', 'rainy_dusk', 'foggy_dusk',
                'snowy_dusk')


def by_seed(folder: str) -> dict:
    """seed -> mean mIoU over the compositions, of every finished run under ``folder``."""
    found = {}
    for path in sorted(Path(folder).glob('*/metrics.json')):
        metrics = json.loads(path.read_text(encoding='utf-8'))
        mious = [metrics['conditions'][c]['mIoU'] for c in COMPOSITIONS]
        found[metrics['config']['seed']] = sum(mious) / len(mious)
    return found


def main(row: str, baseline: str) -> None:
    a, b = by_seed(row), by_seed(baseline)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit(f'no seed ran in both {row} and {baseline}')
    for seed in seeds:
        print(f'seed {seed}: {a[seed]:.2f} - {b[seed]:.2f} = {a[seed] - b[seed]:+.2f}')
    gap = t_interval([a[s] - b[s] for s in seeds])
    line = f'mean of the compositions, {row} - {baseline}: {gap.mean:+.2f} over {gap.n} seeds'
    if gap.low is not None:
        line += (f', 95% interval [{gap.low:+.2f}, {gap.high:+.2f}] ({gap.verdict}); '
                 f'+-1 would need {seeds_for_half_width(gap.std)} seeds')
    print(line)


if __name__ == '__main__':
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
