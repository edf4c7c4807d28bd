"""Segmenter (domino_seg.apis.inference) and tools/infer.py's job, in-process, on a checkpoint
written here as tools/train.py writes one (weights + the resolved config.yaml beside them)."""
import json
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from domino_seg import Segmenter
from domino_seg.config import build_segmentor, compose, to_mmengine
from domino_seg.errors import ConfigError, DataError, DominoSegError
from domino_seg.models.domino_norm import DominoNorm

FOG = 'acdc/rgb_anon/fog/val'
DOMINO = ['domino=head', 'domain.cache_dir=null']


def tiny(bench, work_dirs):
    """conftest's tiny_overrides, for module-scoped fixtures."""
    return [f'paths.synthetic={bench}', f'paths.work_dirs={work_dirs}',
            'data.generate.num_train=4', 'data.generate.num_val=2',
            'data.generate.height=64', 'data.generate.width=128',
            'data.img_scale=[128,64]', 'data.crop_size=[64,128]', 'data.num_workers=0',
            'schedule.test_batch_size=3']


def write_run(folder, overrides, state_dict=None):
    """``folder/iter_1.pth`` and the ``config.yaml`` tools/train.py would write for
    ``overrides`` (random weights, Domino layers made non-trivial)."""
    cfg = compose(overrides)
    if state_dict is None:
        torch.manual_seed(0)
        model = build_segmentor(cfg)
        for module in model.modules():
            if isinstance(module, DominoNorm):
                torch.nn.init.normal_(module.mlp[-1].weight, std=0.5)
        state_dict = model.state_dict()
    folder.mkdir(parents=True)
    torch.save({'state_dict': state_dict, 'meta': {'iter': 1, 'epoch': 0}},
               folder / 'iter_1.pth')
    (folder / 'config.yaml').write_text(OmegaConf.to_yaml(OmegaConf.to_container(cfg,
                                                                                resolve=True)))
    return folder / 'iter_1.pth', cfg, state_dict


@pytest.fixture(scope='module')
def runs(tiny_benchmark, tmp_path_factory):
    """Checkpoints of three models that share weights: domino=head with domain=text and with
    domain=zero_shot (the tiny CLIP: 64-d embeddings either way), and the baseline."""
    root = tmp_path_factory.mktemp('infer_runs')
    base = tiny(tiny_benchmark, root / 'work_dirs')
    text, _, weights = write_run(root / 'text', base + DOMINO + ['domain=text'])
    zero, _, _ = write_run(root / 'zero_shot', base + DOMINO + ['domain=zero_shot'], weights)
    plain, _, _ = write_run(root / 'none', base)
    return dict(text=text, zero_shot=zero, none=plain, overrides=base)


def said():
    messages = []
    return messages, messages.append


def fog_images(bench):
    return sorted((bench / FOG).rglob('*.png'))


@pytest.mark.parametrize('mode', ['text', 'zero_shot'])
def test_predictions_equal_the_test_pipelines(runs, tiny_benchmark, mode):
    """The label maps tools/test.py computes: its dataset (the embedding from the file's
    condition or image, Resize, PackSegInputs) through the same model's test_step."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    segmenter = Segmenter.from_checkpoint(runs[mode])
    cfg = compose(runs['overrides'] + DOMINO + [f'domain={mode}'])
    dataset = DATASETS.build(to_mmengine(cfg).test_dataloader.dataset)
    picked = [i for i in range(len(dataset))
              if dataset.get_data_info(i)['condition'] in ('cityscapes', 'fog')]
    for index in picked:
        info = dataset.get_data_info(index)
        with torch.no_grad():
            expected = segmenter.model.test_step(pseudo_collate([dataset[index]]))[0]
        condition = info['condition'] if mode == 'text' else None
        [result] = segmenter.predict(info['img_path'], condition=condition)
        assert result.label.dtype == np.uint8
        assert result.label.shape == Image.open(info['img_path']).size[::-1]
        np.testing.assert_array_equal(result.label, expected.pred_sem_seg.data[0].numpy())
        torch.testing.assert_close(torch.from_numpy(result.embedding),
                                   expected.metainfo['domain_embedding'])
        if mode == 'text':  # cityscapes images are the prompt bank's "clear"
            assert result.condition == {'cityscapes': 'clear'}.get(condition, condition)
            assert result.condition_probabilities is None


def test_zero_shot_returns_condition_probabilities(runs, tiny_benchmark):
    segmenter = Segmenter.from_checkpoint(runs['zero_shot'], batch_size=2)
    results = segmenter.predict(fog_images(tiny_benchmark) + [np.zeros((64, 96, 3), np.uint8)])
    assert len(results) == 3
    for result in results:
        probs = result.condition_probabilities
        assert list(probs) == segmenter.conditions and 'fog' in probs
        assert sum(probs.values()) == pytest.approx(1, abs=1e-5)
        assert all(0 <= p <= 1 for p in probs.values())
        assert result.condition is None and result.likely_condition in probs
    # a condition given replaces what CLIP sees: the text embedding of that condition
    [forced] = segmenter.predict(results[0].image, condition='fog')
    assert forced.condition == 'fog' and forced.condition_probabilities is None
    text = Segmenter.from_checkpoint(runs['text'])
    [same] = text.predict(results[0].image, condition='fog')
    np.testing.assert_array_equal(forced.embedding, same.embedding)
    np.testing.assert_array_equal(forced.label, same.label)


def test_image_modes_and_sizes_are_converted_and_said_once(runs, tiny_benchmark):
    messages, notify = said()
    segmenter = Segmenter.from_checkpoint(runs['text'], condition='fog', batch_size=3)
    segmenter.notify = notify
    rgb = np.array(Image.open(fog_images(tiny_benchmark)[0]))
    images = [rgb, rgb[..., 0], np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
              rgb.astype(np.uint16) * 257, Image.fromarray(rgb).convert('P'),
              Image.fromarray(rgb).convert('LA'), Image.fromarray(rgb).convert('RGBA'),
              Image.fromarray(rgb.astype(np.uint16)[..., 0] * 257),  # PIL mode I;16
              np.ascontiguousarray(rgb[:50, :90]), np.zeros((300, 200, 3), np.uint8)]
    results = segmenter.predict(images)
    sizes = [(64, 128)] * 8 + [(50, 90), (300, 200)]
    assert [r.label.shape for r in results] == sizes
    assert all(r.label.dtype == np.uint8 and r.label.max() < 19 for r in results)
    # the same pixels give the same labels, whatever the container
    for r in (results[2], results[3], results[6]):
        np.testing.assert_array_equal(r.label, results[0].label)
    np.testing.assert_array_equal(results[7].label, results[1].label)  # 16-bit grey = grey
    # grey, the alpha channel, 16 bits and a palette, once each, as docs/inference.md promises
    assert len(messages) == 4, messages
    assert 'images[1] is a grey image: converted to RGB' in messages[0]
    assert 'images[2] has an alpha channel' in messages[1]
    assert 'images[3] has 16 bits per channel: scaled to 8 bits' in messages[2]
    assert 'images[4] is a palette image: converted to RGB' in messages[3]


def test_sixteen_bit_colour_png_is_said(runs, tmp_path):
    import cv2
    messages, notify = said()
    segmenter = Segmenter.from_checkpoint(runs['none'])
    segmenter.notify = notify
    cv2.imwrite(str(tmp_path / 'deep.png'), np.full((40, 60, 3), 40000, np.uint16))
    [result] = segmenter.predict(tmp_path / 'deep.png')
    assert result.label.shape == (40, 60) and result.image.max() == 40000 >> 8
    assert messages == [f'{tmp_path / "deep.png"} has 16 bits per channel: scaled to 8 bits. '
                        '(said for the first such image only)']


def test_baseline_needs_no_condition_and_ignores_one(runs):
    messages, notify = said()
    segmenter = Segmenter.from_checkpoint(runs['none'])
    segmenter.notify = notify
    assert segmenter.mode == 'none' and segmenter.generator is None
    [result] = segmenter.predict(np.zeros((64, 128, 3), np.uint8), condition='fog')
    assert result.embedding is None and result.condition is None
    assert messages and 'not used' in messages[0]


def test_text_mode_needs_a_known_condition(runs):
    segmenter = Segmenter.from_checkpoint(runs['text'])
    image = np.zeros((64, 128, 3), np.uint8)
    with pytest.raises(ConfigError, match=r'domain=text.*clear, fog, night, rain, snow'):
        segmenter.predict(image)
    with pytest.raises(ConfigError, match=r"condition='sandstorm'.*choose one of: clear, fog"):
        segmenter.predict(image, condition='sandstorm')
    with pytest.raises(ConfigError, match='sandstorm'):
        Segmenter.from_checkpoint(runs['text'], condition='sandstorm')
    assert segmenter.predict(image, condition='cityscapes')[0].condition == 'clear'


def test_unusable_inputs_are_clear_errors(runs, tmp_path):
    segmenter = Segmenter.from_checkpoint(runs['none'])
    broken = tmp_path / 'broken.png'
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(broken)
    broken.write_bytes(broken.read_bytes()[:60])
    (tmp_path / 'text.jpg').write_text('not an image')
    for path in (broken, tmp_path / 'text.jpg'):
        with pytest.raises(DataError, match=f'image file {path} cannot be read'):
            segmenter.predict(path)
    with pytest.raises(DataError, match='does not exist'):
        segmenter.predict(tmp_path / 'missing.png')
    with pytest.raises(DataError, match='uint8'):
        segmenter.predict(np.zeros((64, 128, 3), np.float32))
    with pytest.raises(DataError, match=r'1000x20 pixels.*128x3'):
        segmenter.predict(np.zeros((20, 1000, 3), np.uint8))
    with pytest.raises(DataError, match='is a video'):
        segmenter.predict(tmp_path / 'clip.mp4')
    with pytest.raises(DataError, match='floating-point'):
        segmenter.predict(Image.fromarray(np.zeros((64, 128), np.float32)))


def test_checkpoint_errors(runs, tmp_path):
    with pytest.raises(DominoSegError, match='is not a file'):
        Segmenter.from_checkpoint(tmp_path / 'none.pth')
    lone = tmp_path / 'lone' / 'iter_1.pth'
    lone.parent.mkdir()
    shutil.copy(runs['none'], lone)
    with pytest.raises(ConfigError, match='no config.yaml beside it'):
        Segmenter.from_checkpoint(lone)
    # weights of another model: the recorded config says domino=head, the weights are plain
    other = tmp_path / 'other'
    shutil.copytree(runs['text'].parent, other)
    shutil.copy(runs['none'], other / 'iter_1.pth')
    cfg = OmegaConf.load(other / 'config.yaml')
    cfg.data.num_classes = cfg.model.segmentor.decode_head.num_classes = 5
    OmegaConf.save(cfg, other / 'config.yaml')
    with pytest.raises(DominoSegError, match='does not fit'):
        Segmenter.from_checkpoint(other / 'iter_1.pth')


# ---- tools/infer.py's job (run_cli: exit status 2, one paragraph) ----------------------------

def infer_cfg(runs, checkpoint, *extra):
    from domino_seg.apis.infer import infer
    overrides = [f'checkpoint={checkpoint}', *extra]
    cfg = compose(runs['overrides'] + overrides, 'infer')
    return lambda: infer(cfg, overrides)


def test_infer_job_errors(runs, tmp_path, fails):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no image here')
    err = fails(infer_cfg(runs, runs['text'], f'input={empty}', f'out={tmp_path / "o"}'))
    assert f'the folder {empty} holds no image' in err
    err = fails(infer_cfg(runs, runs['text'], f'input={tmp_path}/*.png', 'condition=fog'))
    assert 'holds no image' in err
    err = fails(infer_cfg(runs, runs['text'], f'input={tmp_path / "nothing.png"}'))
    assert 'no such file or folder' in err
    image = tmp_path / 'street.png'
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    err = fails(infer_cfg(runs, runs['text'], f'input={image}', f'out={tmp_path / "o"}'))
    assert 'trained with domain=text' in err and 'clear, fog, night, rain, snow' in err
    err = fails(infer_cfg(runs, runs['text'], f'input={image}', 'domain.condition=haze'))
    assert "condition='haze' is not a condition of the prompt bank" in err
    err = fails(infer_cfg(runs, runs['text'], f'input={image}', 'alpha=2.0'))
    assert 'alpha=2.0' in err
    (tmp_path / 'bad.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
    err = fails(infer_cfg(runs, runs['none'], f'input={tmp_path}', f'out={tmp_path / "o"}'))
    assert f'image file {tmp_path / "bad.png"} cannot be read' in err


def test_infer_job_writes_overlays_label_maps_and_an_index(runs, tiny_benchmark, tmp_path,
                                                           capsys):
    out = tmp_path / 'out'
    job = infer_cfg(runs, runs['zero_shot'], f'input={tiny_benchmark / FOG}', f'out={out}',
                    'batch_size=1')
    report = job()
    stems = sorted(str(p.relative_to(tiny_benchmark / FOG))[:-len('_rgb_anon.png')]
                   for p in fog_images(tiny_benchmark))
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*.png')) == sorted(
        [s + '_labelTrainIds.png' for s in stems] + [s + '_overlay.png' for s in stems])
    for stem in stems:
        labels = np.array(Image.open(out / f'{stem}_labelTrainIds.png'))
        assert labels.shape == (64, 128) and labels.dtype == np.uint8
        overlay = Image.open(out / f'{stem}_overlay.png')
        assert overlay.mode == 'RGB' and overlay.width == 128 and overlay.height > 64
    index = json.loads((out / 'infer.json').read_text())
    assert index == json.loads(json.dumps(report))
    assert [sum(r['condition_probabilities'].values()) for r in index['images']] == \
        pytest.approx([1, 1], abs=1e-5)
    assert 'domain=zero_shot' in capsys.readouterr().out


def test_find_inputs_names_outputs_below_their_folder_or_glob(tmp_path):
    from domino_seg.apis.infer import find_inputs
    for name in ('a.png', 'sub/b_leftImg8bit.png', 'sub/c.JPG', 'clip.mp4', 'notes.txt',
                 'out/a_overlay.png'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    out = str(tmp_path / 'out')  # earlier outputs inside the input folder are left out
    found = find_inputs(str(tmp_path), out)
    assert [(i.stem, i.is_video) for i in found] == [
        ('a', False), ('clip', True), ('sub/b', False), ('sub/c', False)]
    assert [i.stem for i in find_inputs(f'{tmp_path}/**/*.png', out)] == ['a', 'sub/b']
    assert [i.stem for i in find_inputs(f'{tmp_path}/sub/*', out)] == ['b', 'c']
    assert [i.stem for i in find_inputs(str(tmp_path / 'sub' / 'c.JPG'), out)] == ['c']
    (tmp_path / 'a.jpg').write_bytes(b'')
    with pytest.raises(DataError, match=r'a.jpg and .*a.png would both write a_overlay.png'):
        find_inputs(str(tmp_path), out)


def snapshot(folder):
    """Every file below ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


def test_infer_never_writes_over_its_inputs(runs, tmp_path, fails):
    """input=[a.png,a_overlay.png] out=<their folder>: a.png's overlay would replace the
    user's a_overlay.png, which is an input; nothing is written."""
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(photos / 'a.png')
    Image.fromarray(np.full((64, 128, 3), 90, np.uint8)).save(photos / 'a_overlay.png')
    before = snapshot(photos)
    err = fails(infer_cfg(runs, runs['none'],
                          f'input=[{photos / "a.png"},{photos / "a_overlay.png"}]',
                          f'out={photos}'))
    assert f'{photos / "a_overlay.png"} would overwrite the input {photos / "a_overlay.png"}' \
        in err and 'choose another out=' in err
    assert snapshot(photos) == before


def test_infer_out_is_a_folder(runs, tmp_path, fails):
    image = tmp_path / 'a.png'
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    (tmp_path / 'results.txt').write_bytes(b'mine')
    err = fails(infer_cfg(runs, runs['none'], f'input={image}',
                          f'out={tmp_path / "results.txt"}'))
    assert f'out={tmp_path / "results.txt"}: {tmp_path / "results.txt"} is a file, not a ' \
           'folder' in err
    assert (tmp_path / 'results.txt').read_bytes() == b'mine'


def test_a_glob_leading_out_of_its_folder_is_refused(runs, tmp_path, fails):
    """in/*/../../victim/*.png would write its overlays into victim/, outside out=."""
    (tmp_path / 'in' / 'x').mkdir(parents=True)
    (tmp_path / 'victim').mkdir()
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / 'victim' / 'b.png')
    before = snapshot(tmp_path)
    out = tmp_path / 'new' / 'out'  # not there yet
    err = fails(infer_cfg(runs, runs['none'], f'input={tmp_path}/in/*/../../victim/*.png',
                          f'out={out}'))
    assert f'{tmp_path}/in/x/../../victim/b.png lies outside {tmp_path}/in, the folder the ' \
           'glob starts from' in err and f'outside out={out}' in err
    assert snapshot(tmp_path) == before and not (tmp_path / 'new').exists()


def test_infer_leaves_the_files_of_a_run_alone(runs, tmp_path, fails):
    run = tmp_path / 'run'
    shutil.copytree(runs['none'].parent, run)
    (run / 'street_overlay.png').write_bytes(b'not written by infer')
    image = tmp_path / 'street.png'
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    before = snapshot(run)
    err = fails(infer_cfg(runs, run / 'iter_1.pth', f'input={image}', f'out={run}'))
    assert f'{run}/street_overlay.png exists in the folder of the run {run}' in err
    assert snapshot(run) == before


def test_a_full_disk_ends_in_one_error_and_keeps_what_was_written(runs, tmp_path, fails,
                                                                   disk_full_after):
    """Rerunning into a run folder replaces the earlier outputs (infer.json lists them); a
    full disk at the second image leaves the first image's new files and the second's old ones
    whole, and no temporary file."""
    run = tmp_path / 'run'
    shutil.copytree(runs['none'].parent, run)
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name, value in (('a.png', 0), ('b.png', 200)):
        Image.fromarray(np.full((64, 128, 3), value, np.uint8)).save(photos / name)
    out = run / 'infer'
    infer_cfg(runs, run / 'iter_1.pth', f'input={photos}', f'out={out}', 'alpha=0.5')()
    first = snapshot(out)
    disk_full_after(2)  # a's two PNGs, then b's overlay fails
    err = fails(infer_cfg(runs, run / 'iter_1.pth', f'input={photos}', f'out={out}',
                          'alpha=1.0'))
    assert f'could not write {out / "b_overlay.png"}: the disk is full. Nothing was ' \
           'half-written: the previous b_overlay.png is intact. Free space' in err
    second = snapshot(out)
    assert sorted(second) == sorted(first)  # no temporary file left
    assert second['a_overlay.png'] != first['a_overlay.png']  # whole, with alpha=1
    for name in ('b_overlay.png', 'b_labelTrainIds.png', 'infer.json'):
        assert second[name] == first[name]


def test_grey_and_palette_files_are_said_once(runs, tmp_path):
    messages, notify = said()
    segmenter = Segmenter.from_checkpoint(runs['none'])
    segmenter.notify = notify
    rgb = np.random.default_rng(0).integers(0, 255, (64, 128, 3), np.uint8)
    for name in ('g1', 'g2'):
        Image.fromarray(rgb).convert('L').save(tmp_path / f'{name}.png')
    Image.fromarray(rgb).convert('P').save(tmp_path / 'p.png')
    segmenter.predict([tmp_path / 'g1.png', tmp_path / 'g2.png', tmp_path / 'p.png'])
    assert messages == [f'{tmp_path / "g1.png"} is a grey image: converted to RGB. (said for '
                        'the first such image only)',
                        f'{tmp_path / "p.png"} is a palette image: converted to RGB. (said for '
                        'the first such image only)']


def test_an_image_beyond_pils_pixel_limit_says_so(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from domino_seg.apis.inference import load_image
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp_path / 'big.png')
    monkeypatch.setattr(PILImage, 'MAX_IMAGE_PIXELS', 1000)  # 8192 pixels: over twice that
    with pytest.raises(DataError) as err:
        load_image(tmp_path / 'big.png')
    message = str(err.value)
    assert message.startswith(f'image file {tmp_path / "big.png"} is too large to decode '
                              'safely (Image size (8192 pixels) exceeds limit of 2000 pixels')
    assert 'more than twice PIL.Image.MAX_IMAGE_PIXELS = 1000 pixels. Resize it first' in message
    assert 'truncated' not in message
