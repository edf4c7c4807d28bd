"""Human-readable tables of a metrics report."""
from __future__ import annotations

from typing import Optional, Sequence

from prettytable import PrettyTable


def _fmt(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def format_table(report: dict, seen_conditions: Sequence[str] = ('cityscapes',)) -> str:
    """Rows: each condition (seen ones marked), then the mean over unseen conditions;
    columns: mIoU, aAcc, images."""
    table = PrettyTable(['condition', 'mIoU', 'aAcc', 'images'])
    table.align['condition'] = 'l'
    for condition, row in report['conditions'].items():
        name = condition + (' (seen)' if condition in seen_conditions else '')
        table.add_row([name, _fmt(row['mIoU']), _fmt(row['aAcc']), row['num_images']])
    table.add_row(['mean (unseen)', _fmt(report.get('mean_unseen_mIoU')), '', ''])
    return table.get_string()
