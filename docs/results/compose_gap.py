"""Paired difference of two rows of the composition study on the mean mIoU of the held-out
compositions (one number per seed, then a 95 % t-interval over the seeds):

    python docs/results/compose_gap.py ROW_DIR[,DIR...] BASELINE_DIR[,DIR...] [--seen]

e.g. work_dirs/results/compose/oracle work_dirs/results/compose/finetune (the oracle gap of
docs/results/PROTOCOL.md B). A row is one or more folders (comma-separated) of runs, one per
seed (sweep dirs, searched recursively); runs pair by their recorded ``seed``.
tools/compare.py gives the per-condition intervals; this gives the interval of the
compositions' mean, the number the protocol decides on. ``--seen``: the mean of the seen
conditions' validation splits instead, what settings are chosen on (the compositions unread).
"""
import json
import sys
from pathlib import Path

from domino_seg.evaluation.intervals import seeds_for_half_width, t_interval

COMPOSITIONS = ('foggy_night', 'rainy_night', 'snowy_night', 'rainy_dusk', 'foggy_dusk',
                'snowy_dusk')
SEEN = ('cityscapes', 'fog', 'night', 'rain', 'snow', 'dusk')


def by_seed(folders: str, conditions=COMPOSITIONS) -> dict:
    """seed -> mean mIoU over ``conditions``, of every finished run under ``folders``."""
    found = {}
    runs = (path for folder in folders.split(',') for path in Path(folder).rglob('metrics.json'))
    for path in sorted(runs):
        metrics = json.loads(path.read_text(encoding='utf-8'))
        seed = metrics['config']['seed']
        if seed in found:
            raise SystemExit(f'{folders} hold two runs of seed {seed} (the second: {path})')
        mious = [metrics['conditions'][c]['mIoU'] for c in conditions]
        found[seed] = sum(mious) / len(mious)
    return found


def main(row: str, baseline: str, seen: bool = False) -> None:
    conditions = SEEN if seen else COMPOSITIONS
    a, b = by_seed(row, conditions), by_seed(baseline, conditions)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit(f'no seed ran in both {row} and {baseline}')
    for seed in seeds:
        print(f'seed {seed}: {a[seed]:.2f} - {b[seed]:.2f} = {a[seed] - b[seed]:+.2f}')
    gap = t_interval([a[s] - b[s] for s in seeds])
    what = 'the seen conditions' if seen else 'the compositions'
    means = [sum(x[s] for s in seeds) / len(seeds) for x in (a, b)]
    line = (f'mean of {what}, {row} - {baseline}: {means[0]:.2f} - {means[1]:.2f} = '
            f'{gap.mean:+.2f} over {gap.n} seeds')
    if gap.low is not None:
        line += (f', 95% interval [{gap.low:+.2f}, {gap.high:+.2f}] ({gap.verdict}); '
                 f'+-1 would need {seeds_for_half_width(gap.std)} seeds')
    print(line)


if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if a != '--seen']
    if len(args) != 2:
        raise SystemExit(__doc__)
    main(*args, seen='--seen' in sys.argv[1:])
