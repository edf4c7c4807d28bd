"""Comparison tables from hand-written run folders: grouping, naming, mean ± std, deltas."""
import csv
import io
import json
import statistics

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from domino_seg.errors import ConfigError, DataError
from domino_seg.evaluation import compare

CONDITIONS = ('cityscapes', 'fog', 'night')


def write_run(folder, seed, mious, overrides=(), choices=None, train_weather=(), iteration=10,
              per_class_iou=None, **config):
    """A finished run as tools/train.py leaves it: metrics.json (with the resolved config,
    ``per_class_iou``: condition -> class -> IoU) and Hydra's .hydra/overrides.yaml and
    hydra.yaml."""
    choices = dict(dict(domino='none', domain='none', data='synthetic'), **(choices or {}))
    cfg = dict(task='train', seed=seed, exp_name='synthetic', work_dir=str(folder),
               paths=dict(work_dirs=str(folder.parent)), schedule=dict(max_iters=10),
               data=dict(seen_conditions=['cityscapes'], train_weather=list(train_weather)),
               domino=dict(scope=choices['domino']), domain=dict(mode=choices['domain']))
    cfg = OmegaConf.create(cfg)
    for key, value in config.items():  # e.g. an edited config file: not in the overrides
        OmegaConf.update(cfg, key, value)
    cfg = OmegaConf.to_container(cfg)
    seen = {'cityscapes', *train_weather}
    unseen = [v for c, v in zip(CONDITIONS, mious) if c not in seen]
    metrics = dict(conditions={c: dict(mIoU=v, aAcc=50.0, num_images=2,
                                       per_class_iou=(per_class_iou or {}).get(c, {}))
                               for c, v in zip(CONDITIONS, mious)},
                   mean_unseen_mIoU=float(np.mean(unseen)) if unseen else None,
                   checkpoint=str(folder / 'iter_10.pth'), iter=iteration, config=cfg)
    (folder / '.hydra').mkdir(parents=True)
    (folder / 'metrics.json').write_text(json.dumps(metrics))
    (folder / '.hydra' / 'overrides.yaml').write_text(OmegaConf.to_yaml(list(overrides)))
    (folder / '.hydra' / 'hydra.yaml').write_text(
        OmegaConf.to_yaml(dict(hydra=dict(runtime=dict(choices=choices)))))
    return folder


# a 2x2 sweep: domino=none,head x seed=0,1 (domain=zero_shot for both)
SWEEP = {
    ('none', 0): (60.0, 10.0, 20.0),
    ('none', 1): (62.0, 14.0, 22.0),
    ('head', 0): (61.0, 15.0, 25.0),
    ('head', 1): (63.0, 17.0, 30.0),
}


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / 'multirun' / '20260101_000000'
    for job, ((scope, seed), mious) in enumerate(SWEEP.items()):
        write_run(root / str(job), seed, mious,
                  overrides=[f'domino={scope}', 'domain=zero_shot', f'seed={seed}',
                             'schedule.max_iters=10'],
                  choices=dict(domino=scope, domain='zero_shot'))
    return root


def test_seeds_aggregate_into_rows_named_by_the_differing_override(sweep):
    comp = compare.compare_runs([sweep])
    assert [row.name for row in comp.rows] == ['domino=none', 'domino=head']
    assert comp.conditions == list(CONDITIONS) and comp.unseen == ['fog', 'night']
    assert comp.baseline is comp.rows[0]
    for row, scope in zip(comp.rows, ('none', 'head')):
        assert len(row.runs) == 2
        for i, condition in enumerate(CONDITIONS):
            values = [SWEEP[scope, seed][i] for seed in (0, 1)]
            assert row.cells[condition].mean == pytest.approx(statistics.fmean(values))
            assert row.cells[condition].std == pytest.approx(statistics.stdev(values))
            assert row.cells[condition].n == 2
        unseen = [np.mean(SWEEP[scope, seed][1:]) for seed in (0, 1)]
        assert row.cells[compare.MEAN_UNSEEN].mean == pytest.approx(np.mean(unseen))
        assert row.cells[compare.MEAN_UNSEEN].std == pytest.approx(np.std(unseen, ddof=1))
    head = comp.rows[1]
    # none: unseen means 15, 18 -> 16.5; head: 20, 23.5 -> 21.75
    assert head.delta[compare.MEAN_UNSEEN] == pytest.approx(5.25)
    assert head.delta['fog'] == pytest.approx(4.0)
    assert comp.rows[0].delta['fog'] == 0.0


def cells(line):
    return [c.strip() for c in line.split('|')[1:-1]]


def test_markdown_table_rows(sweep):
    text = compare.format_markdown(compare.compare_runs([sweep]))
    lines = text.splitlines()
    assert cells(lines[0]) == ['configuration', 'seeds', 'cityscapes (seen)', 'fog', 'night',
                               'mean unseen', 'Δ mean unseen']
    none, head = cells(lines[2]), cells(lines[3])
    assert none == ['domino=none', '2', '61.00 ± 1.41', '12.00 ± 2.83', '21.00 ± 1.41',
                    '16.50 ± 2.12', 'baseline']
    assert head == ['domino=head', '2', '62.00 ± 1.41', '16.00 ± 1.41', '27.50 ± 3.54',
                    '21.75 ± 2.47', '+5.25']
    assert 'mean unseen: fog, night' in text and 'to "domino=none"' in text


def test_csv_png_and_markdown_files(sweep, tmp_path):
    comp = compare.compare_runs([sweep], baseline='domino=head')
    paths = compare.write_outputs(comp, tmp_path / 'out')
    assert [p.rsplit('/', 1)[1] for p in map(str, paths)] == list(compare.OUTPUT_FILES)
    with Image.open(tmp_path / 'out' / 'comparison_intervals.png') as png:
        assert png.format == 'PNG'

    rows = list(csv.DictReader(io.StringIO((tmp_path / 'out' / 'comparison.csv').read_text())))
    assert [r['configuration'] for r in rows] == ['domino=none', 'domino=head']
    none = rows[0]
    assert none['seeds'] == '2' and none['seed_values'] == '0 1'
    assert float(none['fog_mean']) == 12.0
    assert float(none['fog_std']) == pytest.approx(statistics.stdev([10.0, 14.0]))
    assert float(none['fog_delta']) == -4.0          # baseline: domino=head
    assert float(none['mean_unseen_delta']) == pytest.approx(-5.25)
    assert float(rows[1]['mean_unseen_delta']) == 0.0
    assert none['work_dirs'].split() == [str(sweep / '0'), str(sweep / '1')]
    assert (tmp_path / 'out' / 'comparison.md').read_text() == compare.format_markdown(comp)
    with Image.open(tmp_path / 'out' / 'comparison.png') as png:
        assert png.format == 'PNG' and png.size[0] > 400


def test_bar_chart_has_one_bar_per_row_and_column_with_error_bars(sweep):
    comp = compare.compare_runs([sweep])
    from matplotlib.container import BarContainer
    ax = compare.plot_comparison(comp).axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == ['domino=none (n=2)', 'domino=head (n=2)']
    heights = [[p.get_height() for p in b.patches] for b in bars]
    assert heights[1] == pytest.approx([62.0, 16.0, 27.5, 21.75])  # conditions + mean unseen
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        'cityscapes (seen)', 'fog', 'night', 'mean unseen']
    assert bars[1].errorbar is not None


def test_rows_from_separate_sweeps_are_named_by_every_differing_key(tmp_path):
    # a baseline sweep (no group overrides) and a Domino sweep with weather augmentation
    for seed in (0, 1):
        write_run(tmp_path / 'base' / str(seed), seed, (60.0, 10.0, 20.0), [f'seed={seed}'])
        write_run(tmp_path / 'text' / str(seed), seed, (60.0, 30.0, 22.0),
                  ['domino=head', 'domain=text', 'data.train_weather=[fog]', f'seed={seed}'],
                  dict(domino='head', domain='text'), train_weather=['fog'])
    comp = compare.compare_runs([tmp_path / 'base', tmp_path / 'text'])
    assert [row.name for row in comp.rows] == [
        'domino=none domain=none data.train_weather=[]',
        'domino=head domain=text data.train_weather=[fog]']
    # fog is seen by the augmented row: the mean unseen of both rows is over night only
    assert comp.unseen == ['night']
    assert comp.rows[1].cells[compare.MEAN_UNSEEN].mean == 22.0
    assert comp.rows[1].cells[compare.MEAN_UNSEEN].std == 0.0
    assert comp.rows[1].delta[compare.MEAN_UNSEEN] == pytest.approx(2.0)
    text = compare.format_markdown(comp)
    assert '30.00 ± 0.00 †' in text and '† seen in training' in text


def test_runs_differing_outside_their_overrides_are_separate_named_rows(tmp_path):
    write_run(tmp_path / 'a', 0, (60.0, 10.0, 20.0), **{'model.lr': 0.1})
    write_run(tmp_path / 'b', 0, (61.0, 11.0, 21.0), **{'model.lr': 0.2})
    comp = compare.compare_runs([tmp_path])
    assert [row.name for row in comp.rows] == ['model.lr=0.1', 'model.lr=0.2']


def test_one_configuration_one_row_without_std_for_a_single_seed(tmp_path):
    write_run(tmp_path / '0', 3, (60.0, 10.0, 20.0), ['seed=3'])
    comp = compare.compare_runs([tmp_path])
    assert [row.name for row in comp.rows] == ['synthetic']
    row = comp.rows[0]
    assert row.cells['fog'].mean == 10.0 and row.cells['fog'].std is None
    assert cells(compare.format_markdown(comp).splitlines()[2]) == [
        'synthetic', '1', '60.00', '10.00', '20.00', '15.00', 'baseline']


def test_baseline_choice_and_ambiguity(sweep, tmp_path):
    comp = compare.compare_runs([sweep], baseline='domino=head')
    assert comp.baseline.name == 'domino=head'
    assert comp.rows[0].delta['fog'] == pytest.approx(-4.0)
    with pytest.raises(ConfigError, match=r"matches 0 rows.*domino=none; domino=head"):
        compare.compare_runs([sweep], baseline='domino=full')
    runs = tmp_path / 'runs'
    for job, (scope, domain) in enumerate((('none', 'zero_shot'), ('head', 'zero_shot'),
                                           ('head', 'text'))):
        write_run(runs / str(job), 0, (60.0, 10.0 + job, 20.0),
                  [f'domino={scope}', f'domain={domain}'], dict(domino=scope, domain=domain))
    with pytest.raises(ConfigError, match='matches 2 rows'):
        compare.compare_runs([runs], baseline='domino=head')
    comp = compare.compare_runs([runs], baseline='domain=text')
    assert comp.baseline is comp.rows[2] and comp.rows[0].delta['fog'] == -2.0
    comp = compare.compare_runs([runs], baseline='domain=zero_shot domino=head')  # any order
    assert comp.baseline is comp.rows[1]


def test_unfinished_runs_are_left_out_with_a_warning(sweep):
    write_run(sweep / '4', 2, (99.0, 99.0, 99.0), ['domino=none', 'domain=zero_shot', 'seed=2'],
              dict(domino='none', domain='zero_shot'), iteration=5)
    comp = compare.compare_runs([sweep])
    assert len(comp.rows[0].runs) == 2
    assert any('iteration 5 of 10' in w and str(sweep / '4') in w for w in comp.warnings)


def test_repeated_seeds_are_flagged(sweep):
    write_run(sweep / '4', 1, (62.0, 14.0, 22.0), ['domino=none', 'domain=zero_shot', 'seed=1'],
              dict(domino='none', domain='zero_shot'))
    comp = compare.compare_runs([sweep])
    assert len(comp.rows[0].runs) == 3
    assert any('same seed' in w for w in comp.warnings)


def test_bad_inputs_fail_naming_the_file(tmp_path):
    with pytest.raises(DataError, match='no metrics.json under'):
        compare.compare_runs([tmp_path])
    with pytest.raises(DataError, match='does not exist'):
        compare.compare_runs([tmp_path / 'nope'])
    (tmp_path / 'r').mkdir()
    (tmp_path / 'r' / 'metrics.json').write_text('{"conditions": ')
    with pytest.raises(DataError, match=r'r/metrics.json is not readable JSON'):
        compare.compare_runs([tmp_path])


def test_paired_per_seed_differences_to_the_baseline(sweep):
    """Each row's runs minus the baseline's run of the same seed, then mean ± std."""
    comp = compare.compare_runs([sweep], baseline='domino=none')
    none, head = comp.rows
    by_seed = {run.config['seed']: run for run in none.runs}
    fog = [run.miou('fog') - by_seed[run.config['seed']].miou('fog') for run in head.runs]
    assert head.paired['fog'].mean == pytest.approx(statistics.fmean(fog))
    assert head.paired['fog'].std == pytest.approx(statistics.stdev(fog))
    assert none.paired['fog'].mean == 0 and none.paired['fog'].std == 0
    # the 95% t-interval, as scipy's one-sample t-test on the differences gives it
    expected = stats.ttest_1samp(fog, 0.0).confidence_interval(0.95)
    assert (head.paired['fog'].low, head.paired['fog'].high) == pytest.approx(
        (expected.low, expected.high), rel=1e-12)
    assert head.paired['fog'].verdict == 'not distinguishable'
    unseen = head.paired[compare.MEAN_UNSEEN]  # +5.25 ± 0.35 over 2 seeds: excludes 0
    assert unseen.low > 0 and unseen.verdict == 'better'
    text = compare.format_markdown(comp)
    paired = text.split('Paired per-seed difference to "domino=none"')[1].splitlines()
    lines = [cells(line) for line in paired if line.startswith('| domino=head')]
    assert [line[1] for line in lines] == ['cityscapes', 'fog', 'night', 'mean unseen']
    assert lines[1] == ['domino=head', 'fog', '2',
                        f'{statistics.fmean(fog):+.2f} ± {statistics.stdev(fog):.2f}',
                        f'[{expected.low:+.2f}, {expected.high:+.2f}]', 'not distinguishable']
    assert lines[3][-1] == 'better'
    csv_row = list(csv.DictReader(io.StringIO(compare.format_csv(comp))))[1]
    assert float(csv_row['fog_paired_delta_mean']) == pytest.approx(statistics.fmean(fog))
    assert float(csv_row['fog_paired_low']) == head.paired['fog'].low
    assert csv_row['fog_paired_n'] == '2' and csv_row['fog_paired_verdict'] == \
        'not distinguishable'
    assert csv_row['fog_bootstrap_delta'] == ''  # seeds, not single runs


def test_training_sources_make_their_conditions_seen(tmp_path):
    write_run(tmp_path / 'a', 0, [60, 10, 20])
    config = json.loads((tmp_path / 'a' / 'metrics.json').read_text())
    config['config']['data']['train_sources'] = [{'kind': 'cityscapes', 'root': 'x'},
                                                 {'kind': 'acdc', 'root': 'y',
                                                  'condition': 'night'}]
    (tmp_path / 'a' / 'metrics.json').write_text(json.dumps(config))
    comp = compare.compare_runs([tmp_path])
    assert comp.rows[0].seen == {'cityscapes', 'night'} and comp.unseen == ['fog']


def test_a_group_a_row_lacks_does_not_name_it(tmp_path):
    write_run(tmp_path / 'base', 0, [60, 10, 20], ['domino=none', 'domain=none'],
              choices={'domain/text_encoder': None})
    write_run(tmp_path / 'minilm', 0, [61, 12, 22],
              ['domino=head', 'domain=text', 'domain/text_encoder=minilm'],
              choices=dict(domino='head', domain='text', **{'domain/text_encoder': 'minilm'}))
    comp = compare.compare_runs([tmp_path], baseline='domino=none')
    assert [row.name for row in comp.rows] == [
        'domino=none domain=none', 'domino=head domain=text domain/text_encoder=minilm']


# per-class IoU of the SWEEP runs; 'bike' is absent from one baseline run's fog images, and
# the second head run recorded no per-class IoU for night
PER_CLASS = {
    ('none', 0): dict(fog=dict(road=80.0, car=40.0, bike=None), night=dict(road=50.0, car=5.0)),
    ('none', 1): dict(fog=dict(road=84.0, car=46.0, bike=10.0), night=dict(road=54.0, car=7.0)),
    ('head', 0): dict(fog=dict(road=81.0, car=50.0, bike=20.0), night=dict(road=60.0, car=9.0)),
    ('head', 1): dict(fog=dict(road=87.0, car=52.0, bike=30.0)),
}


@pytest.fixture
def per_class_sweep(tmp_path):
    root = tmp_path / 'per_class'
    for job, ((scope, seed), mious) in enumerate(SWEEP.items()):
        write_run(root / str(job), seed, mious, overrides=[f'domino={scope}', f'seed={seed}'],
                  choices=dict(domino=scope), per_class_iou=PER_CLASS[scope, seed])
    return root


def test_per_class_iou_is_mean_and_std_over_seeds_with_deltas(per_class_sweep):
    comp = compare.compare_runs([per_class_sweep])
    per = compare.aggregate_per_class(comp)
    assert list(per.tables) == ['fog', 'night']  # cityscapes: no run recorded it
    for condition, classes in per.tables.items():
        for name, stats in classes.items():
            for stat, scope in zip(stats, ('none', 'head')):
                values = [PER_CLASS[scope, seed].get(condition, {}).get(name) for seed in (0, 1)]
                values = [v for v in values if v is not None]
                assert stat.n == len(values)
                assert stat.mean == pytest.approx(statistics.fmean(values))
                assert stat.std == (pytest.approx(statistics.stdev(values)) if len(values) > 1
                                    else None)
    assert [n.split(':')[0] for n in per.notes] == ['cityscapes', 'night']
    assert str(per_class_sweep / '3') in per.notes[1]

    text = compare.format_per_class_markdown(comp, per)
    fog = text.split('### fog\n\n')[1].split('\n\n')[0].splitlines()
    assert cells(fog[0]) == ['class', 'domino=none', 'domino=head']
    assert [cells(line) for line in fog[2:]] == [
        ['road', '82.00 ± 2.83', '84.00 ± 4.24 (+2.00)'],
        ['car', '43.00 ± 4.24', '51.00 ± 1.41 (+8.00)'],
        ['bike', '10.00', '25.00 ± 7.07 (+15.00)'],
    ]
    night = text.split('### night\n\n')[1].split('\n\n')[0].splitlines()
    assert cells(night[2]) == ['road', '52.00 ± 2.83', '60.00 (+8.00)']
    assert 'note: night: no per-class IoU in the metrics.json of' in text


def test_per_class_files_and_printout(per_class_sweep, tmp_path, capsys):
    comp = compare.main([str(per_class_sweep)], baseline='domino=head',
                        out=str(tmp_path / 'out'), per_class=True)
    out = capsys.readouterr().out
    per = compare.aggregate_per_class(comp)
    md = (tmp_path / 'out' / 'comparison_per_class.md').read_text()
    assert md == compare.format_per_class_markdown(comp, per) and md in out
    assert f'wrote {tmp_path / "out" / "comparison_per_class.csv"}' in out
    rows = list(csv.DictReader(io.StringIO(
        (tmp_path / 'out' / 'comparison_per_class.csv').read_text())))
    assert len(rows) == 3 * 2 + 2 * 2  # fog: 3 classes x 2 rows; night: 2 x 2
    bike = {r['configuration']: r for r in rows if r['condition'] == 'fog'
            and r['class'] == 'bike'}
    assert bike['domino=none']['seeds'] == '1' and float(bike['domino=none']['mean']) == 10.0
    assert bike['domino=none']['std'] == ''
    assert float(bike['domino=none']['delta']) == -15.0  # baseline: domino=head
    assert float(bike['domino=head']['std']) == pytest.approx(statistics.stdev([20.0, 30.0]))
    assert float(bike['domino=head']['delta']) == 0.0


def test_per_class_without_any_per_class_data_is_an_error(sweep, tmp_path):
    with pytest.raises(DataError, match='records per-class IoU'):
        compare.main([str(sweep)], out=str(tmp_path), per_class=True)
    assert not list(tmp_path.glob('comparison*'))  # nothing written


def _with_cost(folder, params, ms, device='cpu'):
    path = folder / 'metrics.json'
    metrics = json.loads(path.read_text())
    metrics.update(model=dict(params=params),
                   inference=dict(ms_per_image=ms, images=10, batch_size=8, device=device))
    path.write_text(json.dumps(metrics))


def test_the_operating_cost_table_from_hand_written_metrics(tmp_path):
    """params, the change on the seen condition (cityscapes), the gain on unseen and the time
    per image against the baseline, each from the recorded values by hand."""
    mious = {('none', 0): [70, 40, 30, 20, 10], ('none', 1): [72, 42, 32, 22, 12],
             ('head', 0): [69, 44, 34, 24, 14], ('head', 1): [70, 46, 36, 26, 16]}
    for i, ((domino, seed), values) in enumerate(mious.items()):
        folder = write_run(tmp_path / str(i), seed, values, [f'domino={domino}', f'seed={seed}'],
                           dict(domino=domino))
        _with_cost(folder, 1_000_000 if domino == 'none' else 1_010_000,
                   {('none', 0): 10.0, ('none', 1): 12.0, ('head', 0): 11.0,
                    ('head', 1): 11.6}[(domino, seed)])
    comp = compare.compare_runs([str(tmp_path)], baseline='domino=none')
    head = next(row for row in comp.rows if row.name == 'domino=head')
    assert head.cost['params'].mean == 1_010_000
    assert head.cost['ms_per_image'].mean == pytest.approx(11.3)
    text = compare.format_markdown(comp)
    table = text.split('Operating cost')[1]
    # Δ mean seen: (69 + 70) / 2 - (70 + 72) / 2 = -1.5; Δ mean unseen: per-seed means of the
    # four unseen conditions, head (29 + 31) / 2 - none (25 + 27) / 2 = +4; time 11.3 / 11
    assert '| domino=head   |       1.01 | +0.010 M |       -1.50 |         +4.00 |       11.3 ' \
           f'|            {11.3 / 11.0:.3f} |' in table, table
    assert '| domino=none   |       1.00 | baseline |       +0.00 |         +0.00 |       11.0 ' \
           '|            1.000 |' in table
    assert 'mean seen: cityscapes' in table
    row = next(r for r in csv.DictReader(io.StringIO(compare.format_csv(comp)))
               if r['configuration'] == 'domino=head')
    assert float(row['params']) == 1_010_000 and float(row['mean_seen']) == 69.5
    assert float(row['ms_per_image']) == pytest.approx(11.3)


def test_timings_from_different_devices_are_flagged(tmp_path):
    for i, (domino, device) in enumerate((('none', 'cpu'), ('head', 'NVIDIA H200'))):
        folder = write_run(tmp_path / str(i), 0, [70, 40, 30, 20, 10], [f'domino={domino}'],
                           dict(domino=domino))
        _with_cost(folder, 1_000_000, 10.0, device)
    comp = compare.compare_runs([str(tmp_path)], baseline='domino=none')
    assert any('timed on different devices (NVIDIA H200, cpu)' in w for w in comp.warnings)


def _edit(folder, edit):
    """Apply ``edit`` to the parsed metrics.json of ``folder`` and write it back (NaN as the
    literal ``NaN`` json.dumps writes, as a hand-edited file could hold)."""
    path = folder / 'metrics.json'
    metrics = json.loads(path.read_text())
    edit(metrics)
    path.write_text(json.dumps(metrics))
    return path


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(tree):
        for key in keys[:-1]:
            tree = tree.setdefault(key, {})
        tree[keys[-1]] = value
    return edit


@pytest.mark.parametrize('edit, key', [
    (_set('conditions', 'fog', 'mIoU', float('nan')), 'conditions.fog.mIoU'),
    (_set('conditions', 'fog', 'mIoU', '12.5'), 'conditions.fog.mIoU'),
    (_set('conditions', 'fog', 'mIoU', 150.0), 'conditions.fog.mIoU'),
    (_set('conditions', 'fog', 'mIoU', True), 'conditions.fog.mIoU'),
    (_set('conditions', 'fog', [1, 2]), 'conditions.fog'),
    (_set('conditions', 'night', 'per_class_iou', 'car', -3.0),
     'conditions.night.per_class_iou.car'),
    (_set('mean_unseen_mIoU', float('inf')), 'mean_unseen_mIoU'),
    (_set('iter', -1), 'iter'),
    (_set('iter', 2.5), 'iter'),
    (_set('model', 'params', -10), 'model.params'),
    (_set('model', 'params', 1.5), 'model.params'),
    (_set('inference', 'ms_per_image', float('nan')), 'inference.ms_per_image'),
    (_set('inference', 'ms_per_image', -1.0), 'inference.ms_per_image'),
    (_set('inference', 'device', 3), 'inference.device'),
    (_set('model', [1]), 'model'),
    (_set('config', 'not a mapping'), 'config'),
    (_set('config', [1, 2]), 'config'),
    (_set('config', 'seed', [0]), 'config.seed'),
    (_set('config', 'schedule', 'max_iters', '10'), 'config.schedule.max_iters'),
    (_set('config', 'data', 'seen_conditions', 'cityscapes'), 'config.data.seen_conditions'),
    (_set('config', 'data', 'train_sources', [{'kind': 3}]), 'config.data.train_sources.0.kind'),
])
def test_a_bad_value_in_metrics_json_names_the_file_and_key(tmp_path, edit, key):
    path = _edit(write_run(tmp_path / 'run', 0, (60.0, 10.0, 20.0)), edit)
    with pytest.raises(DataError) as err:
        compare.compare_runs([tmp_path])
    message = str(err.value)
    assert message.startswith(f'{path}: "{key}" is ') and 'expected' in message
    assert 'rerun tools/test.py' in message


def test_a_bad_config_yaml_beside_a_metrics_json_without_config_is_named(tmp_path):
    folder = write_run(tmp_path / 'run', 0, (60.0, 10.0, 20.0))
    _edit(folder, _set('config', None))
    (folder / 'config.yaml').write_text('- a list\n- not a config\n')
    with pytest.raises(DataError, match=rf'^{folder / "config.yaml"}: "the whole file" is'):
        compare.compare_runs([tmp_path])
    (folder / 'config.yaml').write_text('seed: [unclosed\n')
    with pytest.raises(DataError, match='config.yaml is not readable YAML'):
        compare.compare_runs([tmp_path])


def test_run_folders_without_metrics_are_listed_as_skipped(sweep):
    crashed = sweep / '4'
    (crashed / '.hydra').mkdir(parents=True)
    predict_only = sweep / '5'
    predict_only.mkdir()
    (predict_only / 'config.yaml').write_text('task: test\nevaluate: false\n')
    (sweep / 'notes').mkdir()  # not a work dir: not mentioned
    comp = compare.compare_runs([sweep])
    assert [w for w in comp.warnings if w.startswith('skipped')] == [
        f'skipped {crashed}: no metrics.json: the run stopped before its first evaluation '
        '(failed, interrupted or still running); resume it or leave it out',
        f'skipped {predict_only}: no metrics.json (a prediction-only test, evaluate=false: '
        'nothing is scored)']
    assert sum(len(row.runs) for row in comp.rows) == 4


def test_nothing_left_after_skipping_is_an_error_listing_the_folders(tmp_path):
    (tmp_path / '0' / '.hydra').mkdir(parents=True)
    with pytest.raises(DataError, match=rf'no metrics.json under .* skipped {tmp_path / "0"}: '):
        compare.compare_runs([tmp_path])


# per-image records: 3 classes; images of two conditions (intersection, union per class)
def _sample(pred, label, condition, rel_path):
    import torch
    return dict(pred_sem_seg=dict(data=torch.tensor([pred])),
                gt_sem_seg=dict(data=torch.tensor([label])), condition=condition,
                img_path=f'/data/{rel_path}', rel_path=rel_path)


def _evaluated(per_image=True, **kwargs):
    from domino_seg.evaluation.metrics import ConditionIoUMetric
    m = ConditionIoUMetric(seen_conditions=['cityscapes'], conditions=['cityscapes', 'fog'],
                           per_image=per_image, **kwargs)
    m.dataset_meta = dict(classes=('road', 'car', 'bike'))
    m.process({}, [_sample([[0, 1, 1]], [[0, 0, 1]], 'fog', 'b/2.png'),
                   _sample([[0, 0, 2]], [[0, 0, 2]], 'cityscapes', 'a/1.png'),
                   _sample([[2, 2, 255]], [[2, 1, 255]], 'fog', 'a/1.png')])
    m.evaluate(3)
    return m


def test_the_per_image_record_holds_each_images_areas_and_reproduces_the_report():
    from domino_seg.evaluation import intervals
    areas = _evaluated().image_areas
    assert areas['classes'].tolist() == ['road', 'car', 'bike']
    assert areas['images'].tolist() == ['b/2.png', 'a/1.png', 'a/1.png']
    assert areas['conditions'].tolist() == ['fog', 'cityscapes', 'fog']
    # fog b/2: label 0 0 1, pred 0 1 1 -> road I1 U2, car I1 U2; fog a/1 (255 ignored):
    # label 2 1, pred 2 2 -> car U1, bike I1 U2
    assert areas['intersect'].tolist() == [[1, 1, 0], [2, 0, 1], [0, 0, 1]]
    assert areas['union'].tolist() == [[2, 2, 0], [2, 0, 1], [0, 1, 2]]
    assert areas['label'].tolist() == [[2, 1, 0], [2, 0, 1], [0, 1, 1]]
    assert areas['intersect'].dtype == np.int64
    m = _evaluated()
    fog = areas['conditions'] == 'fog'
    assert intervals.miou(areas['intersect'][fog].sum(0), areas['union'][fog].sum(0)) == \
        pytest.approx(m.report['conditions']['fog']['mIoU'], rel=1e-6)
    assert _evaluated(per_image=False).image_areas is None


def test_per_image_with_nan_to_num_is_refused():
    with pytest.raises(ConfigError, match=r'per_image=True, nan_to_num=0\).*drop one'):
        _evaluated(nan_to_num=0)


def _hook_runner(work_dir, metric):
    import logging
    from types import SimpleNamespace

    import torch
    return SimpleNamespace(work_dir=str(work_dir), model=torch.nn.Linear(2, 1), cfg={},
                           logger=logging.getLogger('test_compare'),
                           test_evaluator=SimpleNamespace(metrics=[metric]))


def test_metrics_json_hook_writes_the_record_beside_metrics_json(tmp_path):
    from domino_seg.engine.metrics_json_hook import MetricsJsonHook
    from domino_seg.evaluation import intervals
    m = _evaluated()
    MetricsJsonHook(config=dict(seed=0)).after_test_epoch(_hook_runner(tmp_path, m))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.json', 'per_image.npz']
    with np.load(tmp_path / 'per_image.npz', allow_pickle=False) as npz:
        assert sorted(npz.files) == ['classes', 'conditions', 'images', 'intersect', 'label',
                                     'union']
        for key, value in m.image_areas.items():
            assert np.array_equal(npz[key], value) and npz[key].dtype == value.dtype
    mious = {c: row['mIoU'] for c, row in m.report['conditions'].items()}
    record = intervals.read_image_areas(str(tmp_path), mious)
    assert list(record.conditions) == ['fog', 'cityscapes']
    images, inter, union = record.conditions['fog']
    assert images.tolist() == ['a/1.png', 'b/2.png']  # sorted by path
    assert inter.tolist() == [[0, 0, 1], [1, 1, 0]] and union.tolist() == [[0, 1, 2], [2, 2, 0]]
    # without per_image: no record
    MetricsJsonHook(config={}).after_test_epoch(_hook_runner(tmp_path / 'off',
                                                             _evaluated(per_image=False)))
    assert sorted(p.name for p in (tmp_path / 'off').iterdir()) == ['metrics.json']


def test_evaluator_per_image_reaches_the_metric(tmp_path):
    import domino_seg
    cfg = domino_seg.compose([f'work_dir={tmp_path}', 'evaluator.per_image=true'])
    mm = domino_seg.to_mmengine(cfg)
    assert mm.val_evaluator[0]['per_image'] is True and mm.test_evaluator[0]['per_image'] is True
    assert domino_seg.to_mmengine(domino_seg.compose([f'work_dir={tmp_path}'])) \
        .val_evaluator[0]['per_image'] is False
