"""Comparison tables from hand-written run folders: grouping, naming, mean ± std, deltas."""
import csv
import io
import json
import statistics

import numpy as np
import pytest
import scipy.stats
from omegaconf import OmegaConf
from PIL import Image

from domino_seg.apis import compare as compare_tool
from domino_seg.errors import ConfigError, DataError, DominoSegError
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
    expected = scipy.stats.ttest_1samp(fog, 0.0).confidence_interval(0.95)
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
    # below: the paired sd pooled over the conditions (variances 0, 2, 4.5; 1 dof each), what
    # 2 seeds detect at 80% power, and the seeds for a ±1 interval at that sd
    from domino_seg.evaluation import intervals
    sd = np.sqrt((0 + 2 + 4.5) / 3)
    assert compare.power_of(head)[:2] == (pytest.approx(sd), 2)
    assert (f'"domino=head": paired sd {sd:.2f} (pooled over its conditions): 2 seeds detect a '
            f'difference of {intervals.detectable_difference(sd, 2):.2f} mIoU with 80% power '
            '(paired t-test, two-sided α = 0.05); a ±1.00 mIoU 95% interval needs '
            f'{intervals.seeds_for_half_width(sd)} seeds.') in text
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
    comp = compare_tool.compare([str(per_class_sweep)], baseline='domino=head',
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
        compare_tool.compare([str(sweep)], out=str(tmp_path), per_class=True)
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
    model = torch.nn.Linear(2, 1)
    model.data_preprocessor = torch.nn.Identity()  # embeds nothing, swaps nothing
    return SimpleNamespace(work_dir=str(work_dir), model=model, cfg={},
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


def test_t_interval_verdicts_and_the_context_numbers():
    from domino_seg.evaluation import intervals
    differences = [1.2, 0.3, 2.5, 0.9, 1.7]
    interval = intervals.t_interval(differences)
    expected = scipy.stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high),
                                                          rel=1e-12)
    assert interval.n == 5 and interval.std == statistics.stdev(differences)
    assert interval.verdict == 'better'
    assert intervals.t_interval([-d for d in differences]).verdict == 'worse'
    assert intervals.t_interval([1.0, -1.0, 0.5]).verdict == 'not distinguishable'
    one = intervals.t_interval([2.0, None])
    assert (one.mean, one.low, one.n, one.verdict) == (2.0, None, 1, '1 pair: no interval')
    assert intervals.t_interval([None]).verdict == '-'
    # paired sd 1.5 over 3 seeds: a 95% half-width of t(0.975, 2) * 1.5 / sqrt(3) = 3.73
    wide = intervals.t_interval([10.0 - 1.5, 10.0, 10.0 + 1.5])
    assert wide.std == 1.5 and round(wide.high - wide.mean, 2) == 3.73


def test_detectable_difference_has_80_percent_power():
    from scipy.integrate import quad

    from domino_seg.evaluation import intervals
    for sd, n in ((1.5, 3), (1.0, 10), (2.0, 2), (0.7, 25)):
        delta = intervals.detectable_difference(sd, n)
        # the power without scipy's nct: T = (Z + nc) / sqrt(V / df), V ~ chi2(df), rejects
        # when |T| > t*, i.e. Z > t* sqrt(V / df) - nc or Z < -t* sqrt(V / df) - nc
        df, critical, nc = n - 1, scipy.stats.t.ppf(0.975, n - 1), delta * np.sqrt(n) / sd
        power = quad(lambda v: (scipy.stats.norm.sf(critical * np.sqrt(v / df) - nc) +
                                scipy.stats.norm.cdf(-critical * np.sqrt(v / df) - nc)) *
                     scipy.stats.chi2.pdf(v, df), 0, np.inf)[0]
        assert power == pytest.approx(0.8, abs=1e-6)
    # the one-sample t-test's tabulated effect size for n = 10, 80% power: dz = 0.996
    assert intervals.detectable_difference(1.0, 10) == pytest.approx(0.996, abs=5e-4)
    # and by simulation: 3 seeds at sd 1.5 detect 4.90 mIoU in 80% of experiments
    delta = intervals.detectable_difference(1.5, 3)
    assert round(delta, 2) == 4.90
    draws = np.random.default_rng(0).normal(delta, 1.5, size=(100_000, 3))
    t = draws.mean(1) / (draws.std(1, ddof=1) / np.sqrt(3))
    assert np.mean(np.abs(t) > scipy.stats.t.ppf(0.975, 2)) == pytest.approx(0.8, abs=0.005)
    assert intervals.detectable_difference(0.0, 3) is None
    assert intervals.detectable_difference(1.5, 1) is None


def test_seeds_for_a_one_point_interval():
    from domino_seg.evaluation import intervals
    for sd in (0.3, 0.4, 1.5, 4.0):
        n = 2
        while scipy.stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) > 1.0:
            n += 1
        assert intervals.seeds_for_half_width(sd) == n
    assert intervals.seeds_for_half_width(1.5) == 12
    assert intervals.seeds_for_half_width(0.0) is None


def test_pooled_std_weights_by_degrees_of_freedom():
    from domino_seg.evaluation import intervals
    a = intervals.t_interval([1.0, 2.0, 4.0])          # var 7/3, 2 dof
    b = intervals.t_interval([0.0, 1.0])               # var 1/2, 1 dof
    sd, n = intervals.pooled_std([a, b, intervals.t_interval([5.0])])
    assert sd == pytest.approx(np.sqrt((2 * 7 / 3 + 1 * 0.5) / 3)) and n == 2
    assert intervals.pooled_std([intervals.t_interval([5.0])]) == (None, 0)


# hand-written per-image records: condition -> image -> (intersect, union) over 3 classes
RECORD_BASE = {
    'cityscapes': {'c/1.png': ([50, 10, 0], [60, 20, 0]), 'c/2.png': ([40, 5, 3], [50, 9, 6])},
    'fog': {'f/1.png': ([30, 2, 0], [50, 9, 4]), 'f/2.png': ([20, 0, 1], [25, 3, 2]),
            'f/3.png': ([10, 4, 0], [40, 8, 0]), 'f/0.png': ([5, 1, 1], [9, 5, 3])},
    'night': {'n/1.png': ([3, 0, 0], [20, 4, 1]), 'n/2.png': ([8, 2, 0], [12, 6, 0]),
              'n/3.png': ([1, 1, 1], [6, 2, 9])},
}
RECORD_HEAD = {
    'cityscapes': {'c/1.png': ([52, 11, 0], [60, 18, 0]), 'c/2.png': ([41, 5, 2], [50, 9, 6])},
    'fog': {'f/1.png': ([35, 3, 1], [50, 9, 4]), 'f/2.png': ([20, 1, 1], [25, 3, 2]),
            'f/3.png': ([18, 5, 0], [40, 8, 0]), 'f/0.png': ([6, 1, 2], [9, 5, 3])},
    'night': {'n/1.png': ([5, 1, 0], [20, 4, 1]), 'n/2.png': ([8, 2, 0], [12, 6, 0]),
              'n/3.png': ([2, 1, 4], [6, 2, 9])},
}


def hand_miou(record, condition, images):
    """mIoU (%) of the images (repeats count) by hand: per class summed I / summed U over the
    classes with a union, averaged."""
    ious = []
    for k in range(3):
        inter = sum(record[condition][image][0][k] for image in images)
        union = sum(record[condition][image][1][k] for image in images)
        if union > 0:
            ious.append(inter / union)
    return 100 * sum(ious) / len(ious)


def write_record(folder, record, order=None):
    """``per_image.npz`` as MetricsJsonHook writes it (images in ``order``, default as
    listed), and the matching mIoU in metrics.json."""
    lines = [(c, image, areas) for c, images in record.items() for image, areas in
             images.items()]
    lines = [lines[i] for i in order] if order else lines
    np.savez(folder / 'per_image.npz', classes=np.array(['road', 'car', 'bike']),
             images=np.array([line[1] for line in lines]),
             conditions=np.array([line[0] for line in lines]),
             intersect=np.array([line[2][0] for line in lines], dtype=np.int64),
             union=np.array([line[2][1] for line in lines], dtype=np.int64),
             label=np.array([line[2][1] for line in lines], dtype=np.int64))


def record_run(folder, seed, record, domino, order=None):
    mious = [hand_miou(record, c, list(record[c])) for c in CONDITIONS]
    write_run(folder, seed, mious, [f'domino={domino}', f'seed={seed}'], dict(domino=domino))
    write_record(folder, record, order)
    return folder


@pytest.fixture
def single_runs(tmp_path):
    record_run(tmp_path / 'base', 0, RECORD_BASE, 'none')
    record_run(tmp_path / 'head', 3, RECORD_HEAD, 'head', order=[8, 1, 0, 5, 2, 3, 4, 7, 6])
    return tmp_path


def test_per_image_bootstrap_equals_a_hand_computed_one(single_runs):
    comp = compare.compare_runs([single_runs], baseline='domino=none')
    head = comp.rows[1]
    rng = np.random.default_rng(0)  # as compare: one generator, conditions in order
    resampled = {}
    for condition in CONDITIONS:
        images = sorted(RECORD_BASE[condition])  # paired by path, in path order
        n = len(images)
        draws = rng.integers(0, n, size=(1000, n))
        resampled[condition] = [
            hand_miou(RECORD_HEAD, condition, [images[i] for i in draw]) -
            hand_miou(RECORD_BASE, condition, [images[i] for i in draw]) for draw in draws]
        full = hand_miou(RECORD_HEAD, condition, images) - hand_miou(RECORD_BASE, condition,
                                                                     images)
        interval = head.bootstrap[condition]
        assert interval.n == n and interval.mean == pytest.approx(full, abs=1e-12)
        assert [interval.low, interval.high] == list(np.percentile(resampled[condition],
                                                                   [2.5, 97.5]))
    unseen = np.mean([resampled['fog'], resampled['night']], axis=0)
    interval = head.bootstrap[compare.MEAN_UNSEEN]
    assert [interval.low, interval.high] == list(np.percentile(unseen, [2.5, 97.5]))
    assert interval.n == 7
    # the full-sample difference is the metrics.json one
    assert head.bootstrap['fog'].mean == pytest.approx(head.delta['fog'], abs=1e-9)
    assert head.bootstrap['fog'].verdict == 'better'  # every fog image gains

    text = compare.format_markdown(comp)
    table = text.split('Single runs: per-image bootstrap of the difference to "domino=none"')[1]
    fog = cells(next(line for line in table.splitlines() if '|         fog |' in line))
    boot = head.bootstrap['fog']
    assert fog == ['domino=head', 'fog', '4', f'{boot.mean:+.2f}',
                   f'[{boot.low:+.2f}, {boot.high:+.2f}]', 'better']
    assert 'Paired per-seed difference' not in text  # seeds 0 and 3: nothing paired
    row = list(csv.DictReader(io.StringIO(compare.format_csv(comp))))[1]
    assert float(row['fog_bootstrap_low']) == boot.low
    assert row['fog_bootstrap_verdict'] == 'better'


def test_bootstrap_is_left_out_with_a_note_without_records(single_runs):
    (single_runs / 'head' / 'per_image.npz').unlink()
    comp = compare.compare_runs([single_runs], baseline='domino=none')
    assert comp.rows[1].bootstrap == {}
    assert comp.notes == [f'no per-image bootstrap for "domino=head": {single_runs / "head"} '
                          'has no per_image.npz (evaluate it with evaluator.per_image=true)']
    assert 'note: no per-image bootstrap for "domino=head"' in compare.format_markdown(comp)


def test_bootstrap_refuses_runs_scored_on_different_images(single_runs):
    record = {c: dict(images) for c, images in RECORD_HEAD.items()}
    record['fog']['f/9.png'] = record['fog'].pop('f/0.png')
    (single_runs / 'head' / 'metrics.json').unlink()
    (single_runs / 'head' / '.hydra' / 'overrides.yaml').unlink()
    (single_runs / 'head' / '.hydra' / 'hydra.yaml').unlink()
    (single_runs / 'head' / '.hydra').rmdir()
    record_run(single_runs / 'head', 3, record, 'head')
    with pytest.raises(DataError, match=r'pairs images, but .*head/per_image.npz and .*base/'
                                        r'per_image.npz record different fog images: 1 only '
                                        r'in the first, 1 only in the second \(e.g. f/9.png\)'):
        compare.compare_runs([single_runs], baseline='domino=none')


@pytest.mark.parametrize('damage, message', [
    (lambda path: path.write_bytes(b'not a zip'), 'is not a per-image record'),
    (lambda path: np.savez(path, classes=np.array(['road'])), 'is not a per-image record'),
    (lambda path: write_record(path.parent, {'fog': {'f/1.png': ([5, 0, 0], [4, 0, 0])}}),
     r'0 <= intersect <= union'),
    (lambda path: write_record(path.parent, RECORD_BASE), 'is not from the evaluation its '
                                                          r'metrics.json records: cityscapes'),
])
def test_a_damaged_or_stale_record_is_an_error_naming_it(single_runs, damage, message):
    path = single_runs / 'head' / 'per_image.npz'
    damage(path)
    with pytest.raises(DataError, match=rf'{path} {message}|{path} does not hold.*{message}'):
        compare.compare_runs([single_runs], baseline='domino=none')


def test_interval_figure_shows_the_intervals_around_zero(single_runs):
    from matplotlib.legend import Legend
    comp = compare.compare_runs([single_runs], baseline='domino=none')
    ax = compare.plot_intervals(comp).axes[0]
    (line, _, (bars,)), = ax.containers
    boot = comp.rows[1].bootstrap
    keys = ['cityscapes', 'fog', 'night', compare.MEAN_UNSEEN]
    assert line.get_ydata().tolist() == [boot[k].mean for k in keys]
    segments = bars.get_segments()
    assert [(s[0][1], s[1][1]) for s in segments] == pytest.approx(
        [(boot[k].low, boot[k].high) for k in keys])
    assert any(line.get_ydata()[0] == 0 for line in ax.get_lines())  # the zero line
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        'cityscapes (seen)', 'fog', 'night', 'mean unseen']
    legend = ax.get_legend()
    assert isinstance(legend, Legend) and not ax.figure.legends  # inside the axes
    assert [t.get_text() for t in legend.get_texts()] == [
        'domino=none (baseline)', 'domino=head (per-image bootstrap)']
    assert compare.plot_intervals(compare.compare_runs([single_runs / 'base'])) is None


def test_figures_leave_run_lengths_out_of_row_names(tmp_path):
    for i, (domino, iters) in enumerate((('none', 10), ('head', 20))):
        write_run(tmp_path / str(i), 0, (60.0, 10.0 + i, 20.0),
                  [f'domino={domino}', f'schedule.max_iters={iters}',
                   f'schedule.val_interval={iters}'], dict(domino=domino), iteration=iters,
                  **{'schedule.max_iters': iters, 'schedule.val_interval': iters})
    comp = compare.compare_runs([tmp_path])
    assert [row.name for row in comp.rows] == [
        'domino=none schedule.max_iters=10 schedule.val_interval=10',
        'domino=head schedule.max_iters=20 schedule.val_interval=20']
    assert compare.figure_names(comp.rows) == ['domino=none', 'domino=head']
    legend = compare.plot_comparison(comp).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ['domino=none (n=1)',
                                                          'domino=head (n=1)']
    # names that only the run length tells apart keep it
    rows = [compare.Row('schedule.max_iters=10', []), compare.Row('schedule.max_iters=20', [])]
    assert compare.figure_names(rows) == ['schedule.max_iters=10', 'schedule.max_iters=20']


def test_a_failed_record_write_leaves_metrics_json_as_it_was(tmp_path, monkeypatch):
    """The record goes first: when it cannot be written, metrics.json is not updated either,
    so a metrics.json never describes an evaluation its per_image.npz does not."""
    import errno

    from domino_seg.engine import metrics_json_hook
    from domino_seg.errors import DominoSegError
    (tmp_path / 'metrics.json').write_text('{"earlier": true}')
    write = metrics_json_hook.atomic_write_bytes

    def full_disk(path, data):
        if path.endswith('per_image.npz'):
            raise OSError(errno.ENOSPC, 'No space left on device', path)
        write(path, data)
    monkeypatch.setattr(metrics_json_hook, 'atomic_write_bytes', full_disk)
    with pytest.raises(DominoSegError, match=r'per_image.npz: the disk is full.*there is no '
                                             r'earlier per_image.npz'):
        metrics_json_hook.MetricsJsonHook().after_test_epoch(_hook_runner(tmp_path, _evaluated()))
    assert (tmp_path / 'metrics.json').read_text() == '{"earlier": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['metrics.json']


def test_resamples_without_any_class_present_are_left_out_of_the_interval():
    """An image whose pixels are all ignored has no union: a resample of only such images has
    no mIoU (NaN, as mmseg); the percentiles are of the other draws."""
    from pathlib import Path

    from domino_seg.evaluation import intervals
    images = np.array(['a.png', 'b.png'])
    run = intervals.ImageAreas(Path('run'), ['road'], {
        'fog': (images, np.array([[3], [0]]), np.array([[4], [0]]))})
    base = intervals.ImageAreas(Path('base'), ['road'], {
        'fog': (images, np.array([[2], [0]]), np.array([[4], [0]]))})
    fog = intervals.bootstrap(run, base, ['fog'], [], mean_key='mean unseen', draws=40)['fog']
    # every defined draw holds a.png: 75 - 50 whatever the count of b.png
    assert (fog.mean, fog.low, fog.high) == (25.0, 25.0, 25.0)
    assert fog.verdict == 'better'


def test_out_must_be_a_folder_and_a_full_disk_is_one_error(sweep, tmp_path, disk_full_after):
    (tmp_path / 'table.md').write_text('mine')
    with pytest.raises(ConfigError, match=r'--out=.*table.md: .*table.md is a file, not a '):
        compare_tool.compare([sweep], out=str(tmp_path / 'table.md'))
    assert (tmp_path / 'table.md').read_text() == 'mine'
    out = tmp_path / 'out'
    compare_tool.compare([sweep], out=str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    disk_full_after(0)
    with pytest.raises(DominoSegError, match=f'could not write {out}/comparison.md: the disk '
                                             'is full. Nothing was half-written: the previous'):
        compare_tool.compare([sweep], out=str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
