"""The built-in synthetic benchmark: scenes, weather, and the files written to disk."""
import hashlib
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from domino_seg.data.synthetic import (
    CLASSES,
    CONDITIONS,
    SKY_DEPTH,
    acdc_stem,
    benchmark_is_complete,
    fog,
    read_cityscapes_depth,
    render_sample,
    render_scene,
    render_weather,
    write_benchmark,
    writer,
)
from domino_seg.data.synthetic.weather import PARTS, PRESETS, Weather, compose
from domino_seg.errors import ConfigError, DataError
from domino_seg.io import lock_file

REPO = Path(__file__).resolve().parents[2]
H, W = 64, 128
TINY = dict(num_train=2, num_val=1, height=32, width=64, seed=0)
CITYSCAPES_IDS = {'road': 7, 'sidewalk': 8, 'building': 11, 'wall': 12, 'fence': 13, 'pole': 17,
                  'traffic light': 19, 'traffic sign': 20, 'vegetation': 21, 'terrain': 22,
                  'sky': 23, 'person': 24, 'rider': 25, 'car': 26, 'truck': 27, 'bus': 28,
                  'train': 31, 'motorcycle': 32, 'bicycle': 33}


def rng(*seed):
    return np.random.default_rng(list(seed))


@pytest.fixture(scope='module')
def scenes():
    return [render_scene(H, W, rng(i)) for i in range(6)]


# --- scenes ------------------------------------------------------------------------------


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = (render_scene(H, W, rng(seed)) for seed in (3, 3, 4))
    for name in ('image', 'label', 'depth'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lights == b.lights and a.sun == b.sun
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.label, c.label)


def test_scene_arrays_are_well_formed(scenes):
    for scene in scenes:
        assert scene.image.shape == (H, W, 3) and scene.image.dtype == np.uint8
        assert scene.label.shape == (H, W) and scene.label.dtype == np.uint8
        assert scene.depth.shape == (H, W) and scene.depth.dtype == np.float32
        assert scene.label.max() < len(CLASSES)            # trainIds, no ignore pixels
        assert np.all(np.isfinite(scene.depth)) and scene.depth.min() > 0
        np.testing.assert_array_equal(scene.depth[scene.label == CLASSES.index('sky')],
                                      SKY_DEPTH)


def test_scenes_show_many_classes(scenes):
    seen = set(np.unique(np.concatenate([s.label.ravel() for s in scenes])))
    assert len(seen) >= 10
    common = {'road', 'sidewalk', 'building', 'pole', 'vegetation', 'sky', 'car'}
    assert {CLASSES.index(name) for name in common} <= seen


def test_road_depth_grows_towards_the_horizon(scenes):
    road = CLASSES.index('road')
    for scene in scenes:
        rows = [r for r in range(H) if (scene.label[r] == road).any()]
        depth = [scene.depth[r][scene.label[r] == road].mean() for r in rows]
        assert len(rows) > 5
        assert np.all(np.diff(depth) < 0), 'lower rows must be nearer'


def test_lights_are_pixel_positions_inside_the_image(scenes):
    lights = [light for scene in scenes for light in scene.lights]
    assert lights
    for x, y, radius, rgb in lights:
        assert 0 <= x < W and 0 <= y < H and radius > 0 and len(rgb) == 3


# --- weather ------------------------------------------------------------------------------


def test_fog_is_koschmieder_law():
    clear = np.array([[[0.2, 0.4, 0.6], [1.0, 0.0, 0.5], [0.3, 0.3, 0.3]]])
    depth = np.array([[0.0, 50.0, 1000.0]])
    beta, airlight = 0.03, np.array([0.8, 0.8, 0.9])
    t = np.exp(-beta * depth)[..., None]
    np.testing.assert_allclose(fog(clear, depth, beta, airlight),
                               clear * t + airlight * (1 - t), rtol=1e-12)
    np.testing.assert_allclose(fog(clear, depth, beta, airlight)[0, 0], clear[0, 0])
    np.testing.assert_allclose(fog(clear, depth, beta, airlight)[0, 2], airlight, atol=1e-12)


def test_fog_removes_more_contrast_far_away():
    checker = np.indices((8, 8)).sum(0) % 2 * np.ones(3)[:, None, None]
    image = checker.transpose(1, 2, 0)
    depth = np.where(np.arange(8)[:, None] < 4, 10.0, 80.0) * np.ones((8, 8))
    foggy = fog(image, depth, 0.03, 0.7)
    assert foggy[4:].std() < 0.5 * foggy[:4].std()


def test_rendered_fog_hides_distant_detail(scenes):
    scene = scenes[0]
    foggy = render_weather(scene.image, scene.depth, 'fog', rng(0), label=scene.label)
    near, far = scene.depth < 15, (scene.depth > 60) & (scene.depth < SKY_DEPTH)

    def kept(mask):
        return foggy[mask].astype(float).std() / scene.image[mask].astype(float).std()
    assert kept(far) < kept(near)


def test_clear_is_an_unchanged_copy(scenes):
    image = scenes[0].image
    out = render_weather(image, scenes[0].depth, 'clear', rng(0))
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_night_is_darker(scenes):
    for i, scene in enumerate(scenes[:3]):
        night = render_weather(scene.image, scene.depth, 'night', rng(i), label=scene.label,
                               lights=scene.lights)
        assert night.mean() < 0.5 * scene.image.mean()


@pytest.mark.parametrize('condition', ['fog', 'night', 'rain', 'snow'])
def test_weather_keeps_shape_changes_image_and_is_deterministic(scenes, condition):
    scene = scenes[1]
    kwargs = dict(label=scene.label, lights=scene.lights)
    out = render_weather(scene.image, scene.depth, condition, rng(5), **kwargs)
    again = render_weather(scene.image, scene.depth, condition, rng(5), **kwargs)
    assert out.shape == scene.image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - scene.image).mean() > 5
    np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize('condition', ['fog', 'night', 'rain', 'snow'])
def test_weather_works_without_labels_or_lights(scenes, condition):
    """Real images come with an estimated depth only."""
    scene = scenes[2]
    out = render_weather(scene.image, scene.depth, condition, rng(1), severity=0.7)
    assert out.shape == scene.image.shape and out.dtype == np.uint8


def test_unknown_condition_is_an_error(scenes):
    with pytest.raises(ValueError, match='hail'):
        render_weather(scenes[0].image, scenes[0].depth, 'hail', rng(0))


# --- conditions as attributes --------------------------------------------------------------


def test_the_benchmark_conditions_are_presets_of_attributes():
    assert PRESETS['clear'] == Weather()
    assert PRESETS['fog'].changed() == {'visibility': 'fog'}
    assert PRESETS['night'].changed() == {'illumination': 'night'}
    assert PRESETS['rain'].changed() == {'precipitation': 'rain', 'ground': 'wet'}
    assert PRESETS['snow'].changed() == {'precipitation': 'snow', 'ground': 'snow'}
    assert PRESETS['foggy_night'] == Weather(illumination='night', visibility='fog')
    assert PRESETS['rainy_dusk'] == Weather('dusk', 'clear', 'rain', 'wet')
    for name, parts in PARTS.items():
        assert PRESETS[name] == compose(*(PRESETS[p] for p in parts))


def test_unknown_attributes_and_disagreeing_parts_are_errors():
    with pytest.raises(ValueError, match="unknown visibility 'smog'"):
        Weather(visibility='smog')
    with pytest.raises(ValueError, match='disagree on precipitation'):
        compose(PRESETS['rain'], PRESETS['snow'])


def test_every_preset_has_prompts_in_the_attribute_bank():
    from domino_seg.domain.prompts import load_prompt_bank
    bank = load_prompt_bank(REPO / 'configs/domain/prompts/weather_attributes.yaml')
    assert set(PRESETS) <= set(bank.conditions)


@pytest.mark.parametrize('name', [n for n in PRESETS if n != 'clear'])
def test_every_preset_renders_deterministically(scenes, name):
    scene = scenes[3]
    kwargs = dict(label=scene.label, lights=scene.lights)
    out = render_weather(scene.image, scene.depth, name, rng(2), **kwargs)
    assert out.shape == scene.image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, render_weather(scene.image, scene.depth, PRESETS[name],
                                                      rng(2), **kwargs))


def luminance(image):
    return image.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])


def test_a_foggy_night_lies_between_night_and_fog(scenes):
    for i, scene in enumerate(scenes[:3]):
        kwargs = dict(label=scene.label, lights=scene.lights, severity=0.6)
        fog, night, foggy_night = (
            luminance(render_weather(scene.image, scene.depth, name, rng(i), **kwargs))
            for name in ('fog', 'night', 'foggy_night'))
        assert night.mean() < foggy_night.mean() < 0.7 * fog.mean()  # a veil lit by lamps
        assert min(np.abs(foggy_night - fog).mean(), np.abs(foggy_night - night).mean()) > 10


def test_lamp_halos_grow_with_fog_density():
    """One lamp on a black, distant scene: the light around it (outside its glare) grows
    from a clear night to mist, fog and dense fog."""
    image = np.full((96, 192, 3), 30, np.uint8)
    depth = np.full((96, 192), 40.0, np.float32)
    lamp = [(96.0, 30.0, 2.0, (255, 210, 140))]
    ring = np.hypot(*np.mgrid[:96, :192] - np.array([30, 96])[:, None, None])
    ring = (ring > 12) & (ring < 30)
    glow = []
    for visibility in ('clear', 'mist', 'fog', 'dense_fog'):
        weather = Weather(illumination='night', visibility=visibility)
        out = render_weather(image, depth, weather, rng(0), lights=lamp, severity=0.5)
        sky = render_weather(image, depth, weather, rng(0), lights=[], severity=0.5)
        glow.append((luminance(out) - luminance(sky))[ring].mean())
    assert glow[0] < glow[1] < glow[2] < glow[3]


# --- writer -------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    return write_benchmark(tmp_path_factory.mktemp('synthetic') / 'bench', progress=False,
                           **TINY)


def expected_files() -> set:
    files = {'synthetic.json'}
    for split, cities in (('train', ('synthtown', 'pixelburg')), ('val', ('renderdorf',))):
        for index in range(TINY[f'num_{split}']):
            city = cities[index % len(cities)]
            stem = f'{city}_{index // len(cities):06d}_000019'
            files |= {f'cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png',
                      f'cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png',
                      f'cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png',
                      f'cityscapes/disparity/{split}/{city}/{stem}_disparity.png'}
    sequences = {('fog', 'train'): 'GOPR0420', ('fog', 'val'): 'GOPR0430',
                 ('night', 'train'): 'GOPR0440', ('night', 'val'): 'GOPR0450',
                 ('rain', 'train'): 'GOPR0460', ('rain', 'val'): 'GOPR0470',
                 ('snow', 'train'): 'GOPR0480', ('snow', 'val'): 'GOPR0490'}
    for (condition, split), first in sequences.items():
        for index in range(TINY[f'num_{split}']):
            sequence = f'GOPR{int(first[4:]) + index % 2:04d}'
            stem = f'{sequence}_frame_{index // 2:06d}'
            files |= {f'acdc/rgb_anon/{condition}/{split}/{sequence}/{stem}_rgb_anon.png',
                      f'acdc/gt/{condition}/{split}/{sequence}/{stem}_gt_labelTrainIds.png',
                      f'acdc/gt/{condition}/{split}/{sequence}/{stem}_gt_labelIds.png'}
    return files


def written(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob('*') if p.is_file()}


def test_layout_is_exactly_cityscapes_and_acdc(bench):
    assert set(written(bench)) == expected_files()
    assert not list(bench.parent.glob('.bench.partial-*'))


def test_labels_are_valid_train_ids_with_matching_label_ids(bench):
    train_id_to_id = {CLASSES.index(name): label_id for name, label_id in CITYSCAPES_IDS.items()}
    pairs = [(p, str(p).replace('TrainIds', 'Ids')) for p in bench.rglob('*_labelTrainIds.png')]
    assert len(pairs) == 3 + 4 * 3
    for train_path, id_path in pairs:
        train_ids = cv2.imread(str(train_path), cv2.IMREAD_UNCHANGED)
        ids = cv2.imread(id_path, cv2.IMREAD_UNCHANGED)
        assert train_ids.shape == ids.shape == (32, 64) and train_ids.dtype == np.uint8
        assert set(np.unique(train_ids)) <= set(range(19)) | {255}
        expected = np.vectorize(lambda t: train_id_to_id.get(t, 0))(train_ids)
        np.testing.assert_array_equal(ids, expected)


def test_written_image_and_depth_match_the_renderer(bench):
    image, label, depth = render_sample(0, 'val', 'clear', 0, 32, 64)
    stem = 'renderdorf_000000_000019'
    png = cv2.imread(str(bench / f'cityscapes/leftImg8bit/val/renderdorf/{stem}_leftImg8bit.png'))
    np.testing.assert_array_equal(png[..., ::-1], image)            # stored as RGB, not BGR
    decoded = read_cityscapes_depth(bench / f'cityscapes/disparity/val/renderdorf/'
                                            f'{stem}_disparity.png')
    near = depth < 50            # 1/256 px disparity steps: coarse far away at 64 px width
    np.testing.assert_allclose(decoded[near], depth[near], rtol=0.01)
    assert np.all(decoded[depth >= SKY_DEPTH] > 0.9 * SKY_DEPTH)
    acdc = cv2.imread(str(bench / 'acdc/rgb_anon/snow/val/GOPR0490/'
                                  'GOPR0490_frame_000000_rgb_anon.png'))
    np.testing.assert_array_equal(acdc[..., ::-1], render_sample(0, 'val', 'snow', 0, 32, 64)[0])


def test_manifest_marks_the_benchmark_complete(bench):
    manifest = json.loads((bench / 'synthetic.json').read_text())
    assert manifest['params'] == dict(TINY, conditions=['fog', 'night', 'rain', 'snow'])
    assert manifest['counts']['acdc']['night'] == {'train': 2, 'val': 1}
    assert benchmark_is_complete(bench, **TINY)
    assert not benchmark_is_complete(bench, **dict(TINY, seed=1))
    assert not benchmark_is_complete(bench.parent / 'missing', **TINY)
    before = (bench / 'synthetic.json').stat().st_mtime_ns
    assert write_benchmark(bench, progress=False, **TINY) == bench     # complete: no-op
    assert (bench / 'synthetic.json').stat().st_mtime_ns == before


def test_parallel_generation_writes_the_bytes_of_a_serial_one(bench, tmp_path, monkeypatch):
    pools = []

    class Pool(writer.ProcessPoolExecutor):
        def __init__(self, workers, **kwargs):
            pools.append(workers)
            super().__init__(workers, **kwargs)
    monkeypatch.setattr(writer, 'ProcessPoolExecutor', Pool)
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    serial = write_benchmark(tmp_path / 'serial', progress=False, workers=1, **TINY)
    assert pools == []
    parallel = write_benchmark(tmp_path / 'parallel', progress=False, workers=2, **TINY)
    assert pools == [2]
    assert written(parallel) == written(serial) == written(bench)


def test_mismatching_folder_is_an_error_unless_overwrite(bench, tmp_path):
    with pytest.raises(DataError, match='Pass overwrite=true'):
        write_benchmark(bench, progress=False, **dict(TINY, num_train=1))
    copy = tmp_path / 'copy'
    shutil.copytree(bench, copy)
    write_benchmark(copy, progress=False, overwrite=True, **dict(TINY, num_train=1))
    assert benchmark_is_complete(copy, **dict(TINY, num_train=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['copy']  # nothing left beside it


def test_default_benchmark_bytes_did_not_change_with_the_presets(bench):
    # sha256 over (path, bytes) of every file of this benchmark as written by the generator
    # before it rendered any preset (commit 269ae09): the seeds of the four ACDC conditions
    # are their index in PRESETS, of which CONDITIONS is the prefix
    digest = hashlib.sha256()
    for path, data in sorted(written(bench).items()):
        digest.update(path.encode() + b'\0' + data)
    assert digest.hexdigest() == \
        '165b2dcb84f6bddac97b589d250b6954168fb2693a3034c179877e3b8aad6aaa'
    assert writer.SEED_ORDER[:len(CONDITIONS)] == CONDITIONS


@pytest.fixture(scope='module')
def presets_bench(tmp_path_factory):
    """Presets beyond ACDC's, one held out of training (val_only)."""
    return write_benchmark(tmp_path_factory.mktemp('presets') / 'bench', progress=False,
                           conditions=['dusk', 'fog', 'foggy_night'], val_only=['foggy_night'],
                           **TINY)


def test_any_preset_is_written_in_the_acdc_layout_held_out_ones_in_val_only(presets_bench):
    files = written(presets_bench)
    images = {p for p in files if p.startswith('acdc/rgb_anon/')}
    assert {'/'.join(p.split('/')[2:4]) for p in images} == \
        {'dusk/train', 'dusk/val', 'fog/train', 'fog/val', 'foggy_night/val'}
    assert not (presets_bench / 'acdc/rgb_anon/foggy_night/train').exists()
    assert not (presets_bench / 'acdc/gt/foggy_night/train').exists()
    manifest = json.loads((presets_bench / 'synthetic.json').read_text())
    assert manifest['params']['val_only'] == ['foggy_night']
    assert manifest['counts']['acdc']['foggy_night'] == {'train': 0, 'val': 1}
    assert manifest['counts']['acdc']['dusk'] == {'train': 2, 'val': 1}
    assert benchmark_is_complete(presets_bench, conditions=['dusk', 'fog', 'foggy_night'],
                                 val_only=['foggy_night'], **TINY)
    assert not benchmark_is_complete(presets_bench, conditions=['dusk', 'fog', 'foggy_night'],
                                     **TINY)


def test_a_sample_depends_on_its_condition_name_not_on_the_others(presets_bench, bench):
    ours, default = written(presets_bench), written(bench)
    fog = {p: data for p, data in default.items() if p.startswith(('acdc/rgb_anon/fog/',
                                                                    'acdc/gt/fog/'))}
    assert fog and all(ours[p] == data for p, data in fog.items())
    sequence, stem = acdc_stem('val', 'foggy_night', 0)
    image, _, _ = render_sample(0, 'val', 'foggy_night', 0, TINY['height'], TINY['width'])
    path = presets_bench / f'acdc/rgb_anon/foggy_night/val/{sequence}/{stem}_rgb_anon.png'
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], image)
    assert len({acdc_stem(split, c, 0)[0] for c in writer.RENDERABLE
                for split in ('train', 'val')}) == 2 * len(writer.RENDERABLE)


@pytest.mark.parametrize('kwargs,message', [
    (dict(conditions=['fog', 'hail']), "unknown conditions ['hail']"),
    (dict(conditions=['fog'], val_only=['night']), "val_only ['night'] are not among"),
    (dict(conditions=['fog', 'fog']), 'names a condition twice'),
    (dict(conditions=['clear']), "unknown conditions ['clear']")])
def test_bad_conditions_are_errors_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_benchmark(tmp_path / 'bench', progress=False, **kwargs, **TINY)
    assert list(tmp_path.iterdir()) == []


def user_folder(root: Path) -> dict:
    """A folder of someone's own data, with names the benchmark also writes."""
    (root / 'cityscapes' / 'leftImg8bit').mkdir(parents=True)
    (root / 'cityscapes' / 'leftImg8bit' / 'a.png').write_bytes(b'\x89PNG mine')
    (root / 'notes.txt').write_text('mine')
    return written(root)


@pytest.mark.parametrize('manifest', [None, '{"generator": "someone else"}', '{broken'])
def test_a_folder_the_generator_did_not_write_is_never_replaced(tmp_path, manifest):
    before = user_folder(tmp_path / 'data')
    if manifest is not None:
        (tmp_path / 'data' / 'synthetic.json').write_text(manifest)
        before = written(tmp_path / 'data')
    with pytest.raises(DataError) as err:
        write_benchmark(tmp_path / 'data', progress=False, overwrite=True, **TINY)
    assert str(err.value).startswith(f'{tmp_path / "data"} is not a synthetic benchmark that '
                                     'domino-seg generated')
    assert 'nothing in it is replaced or removed' in str(err.value)
    assert written(tmp_path / 'data') == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data']


def test_overwrite_never_deletes_foreign_files(bench, tmp_path):
    copy = tmp_path / 'copy'
    shutil.copytree(bench, copy)
    (copy / 'notes.txt').write_text('mine')
    before = written(copy)
    with pytest.raises(DataError, match="it holds notes.txt, which the generator does not"):
        write_benchmark(copy, progress=False, overwrite=True, **dict(TINY, seed=1))
    assert written(copy) == before


def broken_after(calls: int, error=RuntimeError('disk full')):
    """A render_sample that fails at its ``calls``-th call (mid-way through a generation)."""
    count = iter(range(calls - 1))

    def render(*args, **kwargs):
        if next(count, None) is None:
            if isinstance(error, int):  # a signal to this process
                os.kill(os.getpid(), error)
            raise error
        return render_sample(*args, **kwargs)
    return render


@pytest.mark.parametrize('workers', [1, 2])
def test_failed_generation_leaves_nothing_behind(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(writer, 'render_sample', broken_after(3))
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    with pytest.raises(RuntimeError, match='disk full'):
        write_benchmark(tmp_path / 'new' / 'bench', progress=False, workers=workers, **TINY)
    assert list(tmp_path.iterdir()) == []  # nor the folder made for it


@pytest.mark.parametrize('error', [KeyboardInterrupt(), signal.SIGTERM])
def test_an_interrupted_regeneration_keeps_the_old_benchmark(bench, tmp_path, monkeypatch,
                                                             error):
    copy = tmp_path / 'copy'
    shutil.copytree(bench, copy)
    monkeypatch.setattr(writer, 'render_sample', broken_after(4, error))
    with pytest.raises(KeyboardInterrupt if error != signal.SIGTERM else SystemExit) as err:
        write_benchmark(copy, progress=False, overwrite=True, workers=1, **dict(TINY, seed=1))
    if error == signal.SIGTERM:  # ends the process as Ctrl-C does, with the exit status of
        assert err.value.code == 128 + signal.SIGTERM  # a kill, and its default comes back
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert written(copy) == written(bench)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['copy']


def test_a_crash_in_the_swap_is_recovered_by_the_next_run(bench, tmp_path):
    """kill -9 with the old benchmark set aside and the new one complete but not in place:
    the next run puts the old one back (and with the new parameters, swaps anew)."""
    aside, staging = tmp_path / '.copy.old-x1', tmp_path / '.copy.partial-x2'
    shutil.copytree(bench, aside)
    shutil.copytree(bench, staging)
    (tmp_path / '.copy.partial-foreign').mkdir()  # not the generator's: kept
    (tmp_path / '.copy.lock').write_text('')  # of the killed process
    assert write_benchmark(tmp_path / 'copy', progress=False, **TINY) == tmp_path / 'copy'
    assert written(tmp_path / 'copy') == written(bench)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.copy.partial-foreign', 'copy']
    # killed after the new one went in: the old one set aside goes, even when nothing else
    # is to be done
    shutil.copytree(bench, aside)
    assert write_benchmark(tmp_path / 'copy', progress=False, **TINY) == tmp_path / 'copy'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.copy.partial-foreign', 'copy']


def test_a_generation_in_progress_elsewhere_is_left_alone(bench, tmp_path):
    shutil.copytree(bench, tmp_path / 'copy')
    shutil.copytree(bench, tmp_path / '.copy.partial-x1')
    ready_r, ready_w = os.pipe()
    writing = os.fork()
    if writing == 0:  # another process generating (holding the lock)
        try:
            lock_file(tmp_path / '.copy.lock')
            os.write(ready_w, b'1')
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        os.read(ready_r, 1)
        write_benchmark(tmp_path / 'copy', progress=False, **TINY)
        assert (tmp_path / '.copy.partial-x1' / 'synthetic.json').is_file()
    finally:
        os.kill(writing, signal.SIGKILL)
        os.waitpid(writing, 0)
    write_benchmark(tmp_path / 'copy', progress=False, **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['copy']


def test_cli_writes_relative_to_the_current_directory(tmp_path, tool_main):
    result = tool_main('make_synthetic.py', ['out=data/synth', 'num_train=1', 'num_val=1',
                                             'height=32', 'width=64', 'progress=false'], tmp_path)
    assert result.returncode == 0, result.stderr
    assert benchmark_is_complete(tmp_path / 'data/synth', num_train=1, num_val=1, height=32,
                                 width=64)
    assert str(tmp_path / 'data/synth') in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data']     # no hydra outputs/


def test_training_refuses_a_data_folder_and_says_where_it_generates(tmp_path, fails, capsys):
    from domino_seg.data.builder import ensure_synthetic
    before = user_folder(tmp_path / 'data')
    data = OmegaConf.create({'generate': dict(root=str(tmp_path / 'data'), **TINY)})
    err = fails(lambda: ensure_synthetic(data))
    assert f'error: paths.synthetic={tmp_path / "data"}: {tmp_path / "data"} is not a ' \
           'synthetic benchmark that domino-seg generated' in err
    assert written(tmp_path / 'data') == before
    new = tmp_path / 'new' / 'bench'
    ensure_synthetic(OmegaConf.create({'generate': dict(root=str(new), **TINY)}))
    assert f'Generating the synthetic weather benchmark in {new} (a new folder) ...' in \
        capsys.readouterr().out
    assert benchmark_is_complete(new, **TINY)
    negative = OmegaConf.create({'generate': dict(root=str(new), **dict(TINY, num_train=-1))})
    assert 'error: data.generate: num_train/num_val must be >= 0' in \
        fails(lambda: ensure_synthetic(negative))


def test_make_synthetic_workers_takes_a_positive_integer():
    from domino_seg.config import check_value_ranges
    with pytest.raises(ConfigError, match='workers=0 is out of range: workers takes an integer '
                                          '>= 1'):
        check_value_ranges(OmegaConf.create({'workers': 0}))
