"""What tools/compare.py does: compare finished runs (:mod:`domino_seg.evaluation.compare`
reads, checks, aggregates and formats them), print the tables and write the files."""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from pathlib import Path
from typing import Optional, Sequence

from domino_seg.apis.run import run_cli
from domino_seg.evaluation.compare import (
    OUTPUT_FILES,
    PER_CLASS_FILES,
    Comparison,
    aggregate_per_class,
    compare_runs,
    format_markdown,
    format_per_class_markdown,
    write_outputs,
    write_per_class,
)
from domino_seg.evaluation.metrics import PER_IMAGE_FILE
from domino_seg.io import RECORDED_CONFIG, check_out_folder, check_outputs


def compare(paths: Sequence[str], baseline: Optional[str] = None, out: Optional[str] = None,
            ignore: Sequence[str] = (), per_class: bool = False) -> Comparison:
    """Print the tables and write the files (OUTPUT_FILES); with ``per_class``, also the
    per-class tables and their two files."""
    comp = compare_runs(paths, baseline, ignore)
    per = aggregate_per_class(comp) if per_class else None  # fails before writing anything
    for warning in comp.warnings:
        print(f'warning: {warning}', file=sys.stderr)
    if out is None:
        first = Path(paths[0])
        out = str(first if first.is_dir() else first.parent)
    check_out_folder(out, '--out')
    names = OUTPUT_FILES + (PER_CLASS_FILES if per is not None else ())
    inputs = [osp.join(run.work_dir, name) for row in comp.rows for run in row.runs
              for name in ('metrics.json', RECORDED_CONFIG, PER_IMAGE_FILE)]
    # (its files' names are its own: a run folder, the default --out, may hold earlier ones)
    check_outputs([osp.join(out, name) for name in names], out, inputs, ours=lambda path: True,
                  key='--out')
    print(format_markdown(comp))
    written = write_outputs(comp, out)
    if per is not None:
        print(format_per_class_markdown(comp, per))
        written += write_per_class(comp, per, out)
    for path in written:
        print(f'wrote {path}')
    return comp


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of tools/compare.py (its --help)."""
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


def main(argv: Optional[Sequence[str]] = None) -> None:
    """tools/compare.py: :func:`compare` with the command line's arguments; its errors are one
    paragraph and exit status 2 (:func:`run_cli`)."""
    args = parse_args(argv)
    run_cli(lambda: compare(args.paths, args.baseline, args.out, args.ignore, args.per_class))
