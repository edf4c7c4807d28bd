"""tools/infer.py end to end: a tiny trained checkpoint, tools/test.py's saved predictions
reproduced, a folder of mixed images and a video, errors without a traceback."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from .test_train_test import TEXT_FOG, run_tool

FOG = 'acdc/rgb_anon/fog/val'


@pytest.fixture(scope='module')
def trained(trained_run, tiny_benchmark, tiny_overrides_at, tmp_path_factory):
    """The shared tiny domino=head domain=text run (trained on clear and synthetic fog)."""
    run, _ = trained_run(*TEXT_FOG)
    work_dirs = tmp_path_factory.mktemp('infer_trained') / 'work_dirs'
    return run / 'iter_2.pth', tiny_overrides_at(tiny_benchmark, work_dirs)


def write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             frames[0].shape[1::-1])
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def frame_count(path):
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


# output stem -> (height, width) of the mixed folder's images
SIZES = {'rgb': (64, 128), 'grey': (64, 128), 'sub/rgba': (64, 128), 'palette': (64, 128),
         'small': (50, 90), 'sub/large': (160, 300), 'deep': (64, 128)}


@pytest.fixture(scope='module')
def inferred(trained, tiny_benchmark, tmp_path_factory):
    """One tools/infer.py run (condition=fog) on the benchmark's fog val folder and a folder
    of mixed images (RGB, grey, RGBA, palette, 16-bit, other sizes) and a 5-frame video."""
    checkpoint, _ = trained
    root = tmp_path_factory.mktemp('infer_out')
    rgb = np.array(Image.open(sorted((tiny_benchmark / FOG).rglob('*.png'))[0]))
    folder = root / 'photos'
    (folder / 'sub').mkdir(parents=True)
    Image.fromarray(rgb).save(folder / 'rgb.png')
    Image.fromarray(rgb).convert('L').save(folder / 'grey.png')
    Image.fromarray(rgb).convert('RGBA').save(folder / 'sub' / 'rgba.png')
    Image.fromarray(rgb).convert('P').save(folder / 'palette.png')
    Image.fromarray(rgb).resize((90, 50)).save(folder / 'small.jpg')
    Image.fromarray(rgb).resize((300, 160)).save(folder / 'sub' / 'large.jpg')
    cv2.imwrite(str(folder / 'deep.png'), rgb[..., ::-1].astype(np.uint16) * 257)
    write_video(folder / 'drive.mp4', [np.roll(rgb, 8 * i, axis=1) for i in range(5)])
    out = root / 'out'
    result = run_tool('infer.py', [f'checkpoint={checkpoint}',
                                   f'input=[{tiny_benchmark / FOG},{folder}]', f'out={out}',
                                   'condition=fog', 'batch_size=3'], root)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, out


@pytest.mark.slow
def test_infer_reproduces_test_py_predictions(trained, inferred, tmp_path, tool_main):
    checkpoint, overrides = trained
    test = tool_main('test.py', overrides + [
        f'checkpoint={checkpoint}', 'save_predictions=true', 'evaluate=false',
        'data.eval_conditions=[fog]', f'work_dir={tmp_path / "test"}'], tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    saved = tmp_path / 'test' / 'predictions' / 'fog'
    result, out = inferred
    assert 'domino=head, domain=text (condition fog)' in result.stdout
    expected = sorted(saved.rglob('*_labelTrainIds.png'))
    assert len(expected) == 2
    for path in expected:  # the same relative names: <seq>/<name>_labelTrainIds.png
        ours = out / path.relative_to(saved)
        np.testing.assert_array_equal(np.array(Image.open(ours)), np.array(Image.open(path)))
        assert ours.with_name(ours.name.replace('_labelTrainIds', '_overlay')).is_file()


@pytest.mark.slow
def test_infer_on_a_folder_of_mixed_images_and_a_video(inferred):
    result, out = inferred
    written = sorted(str(p.relative_to(out)) for p in out.rglob('*')
                     if p.is_file() and not p.name.startswith('GOPR'))
    assert written == sorted([f'{s}_labelTrainIds.png' for s in SIZES] +
                             [f'{s}_overlay.png' for s in SIZES] +
                             ['drive_overlay.mp4', 'infer.json'])
    for stem, (height, width) in SIZES.items():
        labels = np.array(Image.open(out / f'{stem}_labelTrainIds.png'))
        assert labels.shape == (height, width) and labels.dtype == np.uint8
        assert labels.max() < 19
        overlay = Image.open(out / f'{stem}_overlay.png')
        assert overlay.mode == 'RGB' and overlay.width == width and overlay.height > height
    assert result.stderr.count('has an alpha channel') == 1  # said once each
    assert result.stderr.count('16 bits per channel') == 1
    assert 'infer: 100%' in result.stderr and 'drive.mp4: 100%' in result.stderr
    assert frame_count(out / 'drive_overlay.mp4') == 5
    assert cv2.VideoCapture(str(out / 'drive_overlay.mp4')).get(cv2.CAP_PROP_FRAME_WIDTH) == 128
    index = json.loads((out / 'infer.json').read_text())
    assert len(index['images']) == 2 + 7 and index['videos'][0]['frames'] == 5
    assert {r['condition'] for r in index['images']} == {'fog'}
    assert '9 image(s)' in result.stdout and '1 video(s)' in result.stdout


def test_text_model_without_condition_exits_2(tmp_path, tiny_overrides, tool_fails):
    """Refused before any model is built: the checkpoint's config.yaml is all it reads."""
    from omegaconf import OmegaConf

    from domino_seg.config import compose
    run = tmp_path / 'run'
    run.mkdir()
    cfg = compose(tiny_overrides + ['domino=head', 'domain=text'])
    OmegaConf.save(OmegaConf.to_container(cfg, resolve=True), run / 'config.yaml')
    (run / 'iter_2.pth').write_bytes(b'')
    image = tmp_path / 'street.png'
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    err = tool_fails('infer.py', [f'checkpoint={run / "iter_2.pth"}', f'input={image}',
                                  f'out={tmp_path / "out"}'], tmp_path)
    assert 'trained with domain=text' in err and 'condition=fog' in err
    assert 'clear, fog, night, rain, snow' in err
    assert not (tmp_path / 'out').exists()


def test_infer_help_lists_its_keys(tmp_path, tool_main):
    result = tool_main('infer.py', ['--help'], tmp_path)
    assert result.returncode == 0, result.stderr
    keys = result.stdout.split('== Keys')[1]
    for key in ('checkpoint=??? (required)', 'input=??? (required)', 'condition=null',
                'batch_size=4', 'alpha=0.5', 'video_codec=mp4v', 'video_fps=null'):
        assert f'  {key}\n' in keys
    for key in ('resume=', 'nan_policy=', 'task=', 'domain=', 'work_dir='):
        assert f'  {key}' not in keys
