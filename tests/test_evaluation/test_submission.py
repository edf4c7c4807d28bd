"""Server-format submission files: labelIds mapping, server file names, and
cityscapesscripts' own pixel-level evaluation of the submitted files against domino-seg's
metric; end to end, tools/test.py with submission, visualize and compare_checkpoint on
random-weight checkpoints, prediction only (evaluate=false) on a split without label files,
and the error for the old key name export=."""
import json
import re

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.datasets import CityscapesDataset
from mmseg.structures import SegDataSample
from omegaconf import OmegaConf
from PIL import Image

from domino_seg.errors import ConfigError
from domino_seg.evaluation.metrics import ConditionIoUMetric
from domino_seg.evaluation.submission import (
    CityscapesSubmissionHook,
    check_format,
    submission_name,
    to_label_ids,
)

cs_labels = pytest.importorskip('cityscapesscripts.helpers.labels')


def test_train_ids_map_to_the_official_label_ids():
    train_ids = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18,
                                                             255]], np.uint8)
    expected = [[cs_labels.trainId2label[t].id if t != 255 else 0 for t in row]
                for row in train_ids]
    assert to_label_ids(train_ids).tolist() == expected
    assert expected[0][:3] == [7, 8, 11] and expected[1][-2] == 33


def test_file_names_keep_the_server_prefix():
    assert submission_name('cityscapes', 'frankfurt/frankfurt_000000_000294_leftImg8bit.png') \
        == 'cityscapes/frankfurt/frankfurt_000000_000294_labelIds.png'
    assert submission_name('fog', 'GOPR0475/GOPR0475_frame_000041_rgb_anon.png') == \
        'fog/GOPR0475/GOPR0475_frame_000041_labelIds.png'


def test_unknown_format_or_label_set_is_a_config_error():
    with pytest.raises(ConfigError, match="submission='kitti'.*submission=cityscapes"):
        check_format('kitti', 19)
    with pytest.raises(ConfigError, match='data.num_classes is 21'):
        check_format('cityscapes', 21)


def noisy_predictions(label, rng):
    """The label with a third of the pixels replaced by classes 0..9 or rider (12). The
    synthetic labels never hold rider, train, motorcycle, bicycle: rider is only predicted
    (IoU 0), the other three are absent from both (left out of the mean). cityscapesscripts
    and mmseg treat both cases alike, and this data checks it."""
    pred = np.where(label == 255, 0, label).astype(np.uint8)
    flip = rng.random(label.shape) < 1 / 3
    pred[flip] = rng.choice([*range(10), 12], flip.sum())
    return pred


def evaluate_with_cityscapesscripts(pred_dir, gt_files):
    """cityscapesscripts' pixel-level mIoU (%) of the predictions under ``pred_dir``, each
    found by the servers' prefix rule; configured in code, no environment variables."""
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval
    args = cs_eval.args
    args.predictionPath, args.predictionWalk = str(pred_dir), None
    args.evalInstLevelScore = False   # needs *_instanceIds.png
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    args.colorized = False
    gt_files = [str(f) for f in gt_files]
    preds = [cs_eval.getPrediction(args, gt) for gt in gt_files]
    result = cs_eval.evaluateImgLists(preds, gt_files, args)
    return result['averageScoreClasses'] * 100


def test_submitted_files_score_the_same_mIoU_with_cityscapesscripts(tiny_benchmark, tmp_path):
    rng = np.random.default_rng(0)
    classes = CityscapesDataset.METAINFO['classes']
    metric = ConditionIoUMetric(seen_conditions=['cityscapes'])
    metric.dataset_meta = dict(classes=classes)
    hook = CityscapesSubmissionHook(str(tmp_path / 'submission'))
    folders = {'cityscapes': (tiny_benchmark / 'cityscapes' / 'leftImg8bit' / 'val',
                              '_leftImg8bit.png', '_gtFine_labelTrainIds.png')}
    for condition in ('fog', 'night'):
        folders[condition] = (tiny_benchmark / 'acdc' / 'rgb_anon' / condition / 'val',
                              '_rgb_anon.png', '_gt_labelTrainIds.png')
    gt_label_ids = {}
    for condition, (img_dir, img_suffix, gt_suffix) in folders.items():
        samples = []
        for img in sorted(img_dir.rglob('*' + img_suffix)):
            gt_path = (str(img).replace('/leftImg8bit/', '/gtFine/').replace('/rgb_anon/', '/gt/')
                       .replace(img_suffix, gt_suffix))
            label = np.array(Image.open(gt_path))
            sample = SegDataSample(metainfo=dict(
                img_path=str(img), condition=condition,
                rel_path=str(img.relative_to(img_dir))))
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None].long())
            sample.pred_sem_seg = PixelData(
                data=torch.from_numpy(noisy_predictions(label, rng))[None].long())
            samples.append(sample)
            gt_label_ids.setdefault(condition, []).append(gt_path.replace('labelTrainIds',
                                                                          'labelIds'))
        hook.after_test_iter(None, 0, outputs=samples)
        metric.process({}, [s.to_dict() for s in samples])
    metric.compute_metrics(metric.results)

    assert len(list((tmp_path / 'submission').rglob('*_labelIds.png'))) == 6
    for condition, gt_files in gt_label_ids.items():
        row = metric.report['conditions'][condition]
        assert row['per_class_iou']['train'] is None     # absent from both: left out
        assert row['per_class_iou']['rider'] == 0.0       # predicted, never in the labels
        official = evaluate_with_cityscapesscripts(tmp_path / 'submission' / condition,
                                                   gt_files)
        assert official == pytest.approx(row['mIoU'], rel=1e-6)  # mmseg's IoU is float32


def save_random_checkpoint(overrides, folder):
    """A tiny random model saved as tools/train.py would (checkpoint + config.yaml beside)."""
    import domino_seg
    cfg = domino_seg.compose(overrides)
    model = domino_seg.build_segmentor(cfg)
    folder.mkdir(parents=True)
    torch.save(dict(state_dict=model.state_dict(), meta={}), folder / 'iter_2.pth')
    OmegaConf.save(cfg, folder / 'config.yaml', resolve=True)
    return folder / 'iter_2.pth'


@pytest.mark.slow
def test_test_tool_writes_grids_and_server_files_that_cityscapesscripts_scores_alike(
        tiny_overrides, tiny_benchmark, tmp_path, tool_main):
    baseline = save_random_checkpoint(tiny_overrides, tmp_path / 'base')
    domino = save_random_checkpoint(tiny_overrides + [
        'domino=head', 'domain=zero_shot', f'domain.cache_dir={tmp_path / "cache"}'],
        tmp_path / 'domino')
    work_dir = tmp_path / 'test'
    result = tool_main('test.py', tiny_overrides + [
        f'checkpoint={baseline}', 'visualize=2', f'compare_checkpoint={domino}',
        'submission=cityscapes', f'work_dir={work_dir}'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'visualize: 100%' in result.stderr  # the grids' progress bar
    # evaluation progress without a terminal: mmengine's lines, no bar (domino_seg/console.py)
    assert 'Iter(test) [' in result.stdout and 'test: ' not in result.stderr
    assert f'submission: {work_dir / "submission"} (10 *_labelIds.png)' in result.stdout

    metrics = json.loads((work_dir / 'metrics.json').read_text())
    for condition in ('cityscapes', 'fog', 'night', 'rain', 'snow'):
        with Image.open(work_dir / 'visualizations' / f'{condition}.png') as grid:
            width, height = grid.size
        assert width > 2 * height  # 4 panels of 2:1 images side by side, 2 rows + legend
        if condition == 'cityscapes':
            gt_files = sorted((tiny_benchmark / 'cityscapes' / 'gtFine' / 'val')
                              .rglob('*_gtFine_labelIds.png'))
        else:
            gt_files = sorted((tiny_benchmark / 'acdc' / 'gt' / condition / 'val')
                              .rglob('*_gt_labelIds.png'))
        submitted = sorted((work_dir / 'submission' / condition).rglob('*_labelIds.png'))
        assert len(submitted) == len(gt_files) == 2
        official = evaluate_with_cityscapesscripts(work_dir / 'submission' / condition, gt_files)
        assert official == pytest.approx(metrics['conditions'][condition]['mIoU'], rel=1e-6)


def unlabelled_overrides(tiny_overrides, root):
    """``+exp=acdc_all`` on the images-only ``test`` split under ``root``, CPU-tiny."""
    return [o for o in tiny_overrides if not o.startswith(('paths.synthetic', 'data.gen'))] + [
        '+exp=acdc_all', f'paths.cityscapes={root / "cityscapes"}',
        f'paths.acdc={root / "acdc"}', 'data.eval_split=test']


@pytest.mark.slow
def test_predict_only_writes_server_files_and_label_maps_for_a_split_without_labels(
        tiny_overrides, unlabelled_test_split, tmp_path, tool_main):
    overrides = unlabelled_overrides(tiny_overrides, unlabelled_test_split)
    checkpoint = save_random_checkpoint(overrides, tmp_path / 'run')
    work_dir = tmp_path / 'test'
    result = tool_main('test.py', overrides + [f'checkpoint={checkpoint}', 'evaluate=false',
                                               'submission=cityscapes', 'save_predictions=true',
                                               'prediction_colors=true', 'visualize=1',
                                               f'work_dir={work_dir}'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (work_dir / 'metrics.json').exists()  # nothing was scored
    assert 'nothing scored' in result.stdout and 'mIoU' not in result.stdout
    assert f'submission: {work_dir / "submission"} (10 *_labelIds.png)\n' \
           f'predictions: {work_dir / "predictions"} (10 *_labelTrainIds.png, ' \
           '10 *_color.png)' in result.stdout

    label_ids = {label.id for label in cs_labels.labels if 0 <= label.trainId < 19}
    to_id = {label.trainId: label.id for label in cs_labels.labels if 0 <= label.trainId < 19}
    palette = CityscapesDataset.METAINFO['palette']
    images = {'cityscapes': (unlabelled_test_split / 'cityscapes' / 'leftImg8bit' / 'test',
                             '_leftImg8bit.png')}
    for condition in ('fog', 'night', 'rain', 'snow'):
        images[condition] = (unlabelled_test_split / 'acdc' / 'rgb_anon' / condition / 'test',
                             '_rgb_anon.png')
    for condition, (img_dir, suffix) in images.items():
        # | condition | images | submission PNGs | predictions PNGs |
        assert re.search(rf'\| {condition} +\| +2 +\| +2 +\| +2 +\|', result.stdout), \
            result.stdout
        stems = sorted(str(p.relative_to(img_dir))[:-len(suffix)]
                       for p in img_dir.rglob('*' + suffix))
        submitted = sorted(str(p.relative_to(work_dir / 'submission' / condition))
                           for p in (work_dir / 'submission' / condition).rglob('*.png'))
        assert submitted == [s + '_labelIds.png' for s in stems] and len(submitted) == 2
        saved = sorted(str(p.relative_to(work_dir / 'predictions' / condition))
                       for p in (work_dir / 'predictions' / condition).rglob('*.png'))
        assert saved == sorted(s + end for s in stems
                               for end in ('_color.png', '_labelTrainIds.png'))
        for stem in stems:
            with Image.open(work_dir / 'submission' / condition / f'{stem}_labelIds.png') as png:
                assert png.mode == 'L' and png.size == (128, 64)
                ids = np.array(png)
            assert set(np.unique(ids).tolist()) <= label_ids
            # the same prediction as the saved trainIds, mapped to labelIds, and coloured
            train_ids = np.array(Image.open(work_dir / 'predictions' / condition /
                                            f'{stem}_labelTrainIds.png'))
            assert (ids == np.vectorize(to_id.get)(train_ids)).all()
            with Image.open(work_dir / 'predictions' / condition / f'{stem}_color.png') as png:
                assert png.mode == 'RGB'
                assert (np.array(png) == np.array(palette)[train_ids]).all()
        with Image.open(work_dir / 'visualizations' / f'{condition}.png') as grid:
            width, height = grid.size
        assert width < 2.8 * height  # image and prediction (~2.3:1), no ground-truth column


def test_predict_only_without_an_output_fails_clearly(tiny_overrides, unlabelled_test_split,
                                                      tmp_path, tool_fails):
    checkpoint = tmp_path / 'x.pth'
    checkpoint.write_bytes(b'')  # the check comes before the checkpoint is read
    err = tool_fails('test.py', unlabelled_overrides(tiny_overrides, unlabelled_test_split) + [
        f'checkpoint={checkpoint}', 'evaluate=false'], tmp_path)
    assert 'evaluate=false scores nothing, so this run would produce nothing: add ' \
           'submission=cityscapes' in err


@pytest.mark.parametrize('override', ['export=cityscapes', '+export=cityscapes'])
def test_the_old_export_key_says_it_was_renamed(override, tmp_path, tool_fails):
    err = tool_fails('test.py', ['checkpoint=x.pth', override], tmp_path)
    assert 'export= was renamed to submission= (same values): submission=cityscapes writes ' \
           'the labelIds PNGs for the evaluation servers, into <work_dir>/submission/.' in err


def test_a_full_disk_while_writing_predictions_is_one_error(tmp_path, disk_full_after):
    """tools/test.py's PNGs (submission=, save_predictions=) end in the tools' error, no
    temporary file left."""
    from domino_seg.errors import DominoSegError
    from domino_seg.evaluation.metrics import save_prediction
    sample = SegDataSample(metainfo=dict(img_path='/data/x/a_rgb_anon.png', condition='fog',
                                         rel_path='seq/a_rgb_anon.png'))
    sample.pred_sem_seg = PixelData(data=torch.zeros(1, 4, 6, dtype=torch.long))
    disk_full_after(0)
    with pytest.raises(DominoSegError, match=rf'could not write {tmp_path}/sub/fog/seq/'
                                             r'a_labelIds.png: the disk is full\. .*tools/test'):
        CityscapesSubmissionHook(str(tmp_path / 'sub')).after_test_iter(None, 0,
                                                                       outputs=[sample])
    with pytest.raises(DominoSegError, match=rf'could not write {tmp_path}/pred/fog/seq/'
                                             r'a_labelTrainIds.png: the disk is full'):
        save_prediction(str(tmp_path / 'pred'), sample.pred_sem_seg.data[0],
                        dict(condition='fog', rel_path='seq/a_rgb_anon.png', img_path='a'))
    assert [p for p in tmp_path.rglob('*') if p.is_file()] == []
