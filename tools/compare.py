"""Compare runs as a table, a CSV, a bar chart and the differences with their intervals:

    python tools/compare.py work_dirs/multirun/<time> [more work or sweep dirs]
        [--baseline domino=none] [--out DIR] [--ignore KEY ...] [--per-class]
"""
import argparse

import domino_seg  # (compat fixes and registration)
from domino_seg.engine.run import run_cli
from domino_seg.evaluation import compare

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Group runs that differ only in the seed, print mIoU per condition as '
                    'mean ± std with deltas to a baseline row (markdown), each difference with '
                    'a 95% interval and a verdict (paired t over seeds; a per-image bootstrap '
                    'for single runs evaluated with evaluator.per_image=true; '
                    'docs/comparisons.md), and write comparison.md, comparison.csv, '
                    'comparison.png and comparison_intervals.png.')
    parser.add_argument('paths', nargs='+',
                        help='work dirs, sweep dirs or metrics.json files (searched '
                             'recursively for metrics.json)')
    parser.add_argument('--baseline',
                        help='the row the Δ column compares to: its name, or key=value parts '
                             'only it has, e.g. domino=none (default: the first row)')
    parser.add_argument('--out', help='folder for the files (default: the first path)')
    parser.add_argument('--per-class', action='store_true',
                        help='also print, for each condition, a table of per-class IoU: rows '
                             'classes, columns configurations, cells mean ± std over seeds with '
                             'the difference of means to the baseline in parentheses; written '
                             'to comparison_per_class.md and comparison_per_class.csv (one line '
                             'per condition, class and configuration). Runs whose metrics.json '
                             'has no per-class IoU are left out with a note (an error if none '
                             'has it)')
    parser.add_argument('--ignore', nargs='*', default=[], metavar='KEY',
                        help='config keys that neither split nor name rows, besides seed, '
                             'work_dir, paths.work_dirs and hydra.*')
    return parser.parse_args(argv)


if __name__ == '__main__':
    args = parse_args()
    run_cli(lambda: compare.main(args.paths, args.baseline, args.out, args.ignore,
                                 args.per_class))
