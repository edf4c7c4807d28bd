"""The console tables of a metrics report."""
from domino_seg.evaluation.report import per_class_table


def cells(line):
    return [c.strip() for c in line.split('|')[1:-1]]


REPORT = {'conditions': {
    'cityscapes': {'per_class_iou': {'road': 90.125, 'car': 50.0, 'bike': None},
                   'per_class_acc': {'road': 95.4, 'car': 66.666, 'bike': None}},
    'fog': {'per_class_iou': {'road': 61.3, 'car': 0.0, 'bike': 12.5},
            'per_class_acc': {'road': 70.0, 'car': None, 'bike': 25.0}},
    # written before per_class_acc was recorded
    'night': {'per_class_iou': {'road': 40.0, 'car': 5.0, 'bike': None}},
}}


def test_per_class_table_rows_are_classes_columns_iou_and_acc_per_condition():
    lines = per_class_table(REPORT).splitlines()
    assert cells(lines[1]) == ['class', 'cityscapes IoU', 'cityscapes Acc', 'fog IoU',
                               'fog Acc', 'night IoU', 'night Acc']
    body = [cells(line) for line in lines[3:-1]]
    assert body == [
        ['road', '90.12', '95.40', '61.30', '70.00', '40.00', '-'],
        ['car', '50.00', '66.67', '0.00', '-', '5.00', '-'],
        ['bike', '-', '-', '12.50', '25.00', '-', '-'],
    ]


def test_per_class_table_wraps_conditions_to_fit_100_columns():
    """Five conditions are ~150 characters in one table: wrapped, each table keeps the class
    column and whole conditions, and every cell is still there once."""
    conditions = {name: REPORT['conditions']['fog'] for name in
                  ('cityscapes', 'fog', 'night', 'rain', 'snow')}
    lines = per_class_table({'conditions': conditions}).splitlines()
    assert max(len(line) for line in lines) <= 100
    headers = [cells(line) for line in lines if line.startswith('| class')]
    assert len(headers) == 2 and all(h[0] == 'class' for h in headers)
    assert [c for h in headers for c in h[1:]] == [f'{c} {m}' for c in conditions
                                                  for m in ('IoU', 'Acc')]
    assert [cells(line)[:3] for line in lines if line.startswith('| bike')] == \
        [['bike', '12.50', '25.00']] * 2
