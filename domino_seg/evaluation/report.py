"""Human-readable tables of a metrics report; tables and figures for comparisons."""
from __future__ import annotations

import io
from typing import Optional, Sequence

from prettytable import PrettyTable, TableStyle

from domino_seg.conditions import CITYSCAPES
from domino_seg.io import atomic_write_bytes


def _fmt(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def format_table(report: dict, seen_conditions: Sequence[str] = (CITYSCAPES,)) -> str:
    """Rows: each condition (seen ones marked), then the mean over unseen conditions;
    columns: mIoU, aAcc, images."""
    table = PrettyTable(['condition', 'mIoU', 'aAcc', 'images'])
    table.align['condition'] = 'l'
    for condition, row in report['conditions'].items():
        name = condition + (' (seen)' if condition in seen_conditions else '')
        table.add_row([name, _fmt(row['mIoU']), _fmt(row['aAcc']), row['num_images']])
    table.add_row(['mean (unseen)', _fmt(report.get('mean_unseen_mIoU')), '', ''])
    return table.get_string()


def per_class_table(report: dict, width: int = 100) -> str:
    """Rows: each class; columns: each condition's IoU and accuracy (%), '-' where undefined
    (absent classes; accuracy of a metrics.json written before it was recorded): which
    classes a condition costs, as mmseg's table shows. Wrapped into tables of a few
    conditions each, at most ``width`` characters wide (a terminal's 100 columns) when one
    condition's columns fit."""
    rows = report['conditions']
    classes = list(dict.fromkeys(name for row in rows.values() for name in row['per_class_iou']))

    def table(conditions: Sequence[str]) -> str:
        table = PrettyTable(['class', *(f'{c} {m}' for c in conditions for m in ('IoU', 'Acc'))])
        table.align = 'r'
        table.align['class'] = 'l'
        for name in classes:
            table.add_row([name, *(_fmt(rows[c].get(key, {}).get(name)) for c in conditions
                                   for key in ('per_class_iou', 'per_class_acc'))])
        return table.get_string()
    tables, group = [], []
    for condition in rows:
        if group and len(table([*group, condition]).splitlines()[0]) > width:
            tables.append(table(group))
            group = []
        group.append(condition)
    return '\n'.join(tables + [table(group)])


def count_table(counts: dict, written: dict) -> str:
    """Rows: each condition; columns: images predicted, then the PNGs written into each
    output folder (``written``: folder name -> condition -> files)."""
    table = PrettyTable(['condition', 'images', *(f'{name} PNGs' for name in written)])
    table.align['condition'] = 'l'
    for condition, num in counts.items():
        table.add_row([condition, num, *(files[condition] for files in written.values())])
    return table.get_string()


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured markdown table (pastes into READMEs, issues and papers' notes)."""
    table = PrettyTable(list(header))
    table.set_style(TableStyle.MARKDOWN)
    table.align = 'r'
    table.align[header[0]] = 'l'
    table.add_rows([list(row) for row in rows])
    return table.get_string()


def save_figure(fig, path: str) -> None:
    """A matplotlib figure as a PNG, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100)
    atomic_write_bytes(path, buf.getvalue())
