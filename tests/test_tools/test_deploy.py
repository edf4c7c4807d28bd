"""tools/deploy.py: a checkpoint folded for one domain, as a plain mmseg checkpoint or ONNX,
computes what the Domino model computes; its errors are one clear paragraph."""
import shutil
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import domino_seg
from domino_seg.apis.deploy import deploy
from domino_seg.domain import builder as domain_builder
from domino_seg.domain.clip_generator import DomainPromptGenerator
from domino_seg.models import DominoNorm
from domino_seg.models.export import SegmentorLogits

from .test_train_test import run_tool

SIZE = (64, 128)
TINY = ['model=segformer_mit_tiny', 'data.img_scale=[128,64]', 'data.crop_size=[64,128]']


def randomize(model, seed=0):
    """Non-identity Domino layers (a short training leaves them near zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if '.mlp.' in name and isinstance(model.get_submodule(name.rsplit('.mlp.')[0]),
                                              DominoNorm) or name.startswith('domain_encoder.'):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return model


@pytest.fixture(scope='module')
def make_run(tmp_path_factory):
    """``make_run(domino, domain)``: a work dir holding ``iter_1.pth`` (random weights, random
    Domino MLPs) and the ``config.yaml`` tools/train.py would record; cached per arguments."""
    runs = {}

    def make(domino='full', domain='text'):
        if (domino, domain) not in runs:
            root = tmp_path_factory.mktemp(f'run_{domino}_{domain}')
            cfg = domino_seg.compose([f'domino={domino}', f'domain={domain}', *TINY,
                                      f'paths.work_dirs={root}', f'work_dir={root}'])
            torch.manual_seed(0)
            model = randomize(domino_seg.build_segmentor(cfg))
            torch.save(dict(state_dict=model.state_dict(), meta={}), root / 'iter_1.pth')
            OmegaConf.save(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)),
                           root / 'config.yaml')
            runs[domino, domain] = root
        return runs[domino, domain]
    return make


def run_deploy(checkpoint, *overrides):
    overrides = [f'checkpoint={checkpoint}', *overrides]
    return deploy(domino_seg.compose(overrides, config_name='deploy'), overrides)


def domino_model(run, checkpoint='iter_1.pth'):
    """The Domino model of ``run`` with its weights, built independently of the tool."""
    recorded = OmegaConf.load(run / 'config.yaml')
    cfg = domino_seg.compose([f'domino={recorded.domino.scope}',
                              f'domain={recorded.domain.mode}', *TINY])
    model = domino_seg.build_segmentor(cfg)
    model.load_state_dict(torch.load(run / checkpoint, weights_only=False)['state_dict'])
    return model.eval(), cfg


def condition_embedding(cfg, condition):
    generator = DomainPromptGenerator(**domain_builder.generator_cfg(cfg.domain))
    return generator.embed_conditions([condition])[0]


def logits(model, images, embedding=None):
    with torch.no_grad():
        return SegmentorLogits(model, embedding)(images)


def test_pth_is_a_plain_mmseg_checkpoint_of_the_folded_model(make_run, tmp_path, capsys):
    from mmengine.config import Config
    from mmseg.apis import init_model

    from domino_seg.engine.runner import check_fits, read_checkpoint
    run = make_run()
    out = tmp_path / 'fog.pth'
    report = run_deploy(run / 'iter_1.pth', 'condition=fog', f'out={out}')
    printed = capsys.readouterr().out
    assert f'pth: {out}' in printed and 'folded for: condition=fog' in printed
    assert report['fold_max_difference'] < 1e-5 and report['config'] == str(tmp_path / 'fog.py')

    checkpoint = torch.load(out, weights_only=True)  # tensors and plain containers only
    meta = checkpoint['meta']
    assert meta['cfg'] == (tmp_path / 'fog.py').read_text()
    assert meta['domino_fold']['folded_for'] == 'condition=fog'
    assert len(meta['dataset_meta']['classes']) == 19
    assert not any('domain_encoder' in k or '.wrapped.' in k for k in checkpoint['state_dict'])
    config = Config.fromstring(meta['cfg'], '.py')
    assert config.model.type == 'EncoderDecoder' and 'domino' not in config.model

    # mmseg's init_model builds it from the config and loads it; it computes the Domino model
    plain = init_model(str(tmp_path / 'fog.py'), str(out), device='cpu')
    model, cfg = domino_model(run)
    images = torch.rand(2, 3, *SIZE) * 255
    expected = logits(model, images, condition_embedding(cfg, 'fog'))
    torch.testing.assert_close(logits(plain, images), expected, rtol=1e-5, atol=1e-5)
    assert (logits(model, images, condition_embedding(cfg, 'night')) - expected).abs().max() \
        > 1e-2  # the fold matters
    # load_from= of a domino=none run takes it (every key, no Domino one)
    baseline = domino_seg.build_segmentor(domino_seg.compose(TINY))
    state_dict = read_checkpoint(str(out))['state_dict']
    check_fits(baseline, state_dict, str(out))


def test_mmseg_inference_model_segments_as_infer_does(make_run, tmp_path):
    """docs/deploy.md's snippet: the written config holds the run's evaluation pipeline (resize to
    data.img_scale keeping the ratio), so mmseg's inference_model gives infer's labels."""
    import mmcv
    from mmengine.config import Config
    from mmseg.apis import inference_model, init_model

    from domino_seg.apis.inference import Segmenter
    run = make_run()
    out = tmp_path / 'fog.pth'
    run_deploy(run / 'iter_1.pth', 'condition=fog', f'out={out}')
    assert [step['type'] for step in Config.fromfile(str(tmp_path / 'fog.py')).test_pipeline] \
        == ['LoadImageFromFile', 'Resize', 'PackSegInputs']
    photo = str(tmp_path / 'photo.png')  # not the size of data.img_scale=[128,64]
    mmcv.imwrite(np.random.default_rng(0).integers(0, 256, (90, 250, 3), np.uint8), photo)
    model = init_model(str(tmp_path / 'fog.py'), str(out), device='cpu')
    result = inference_model(model, photo)
    assert result.img_shape == (46, 128)  # resized to fit 128x64
    got = result.pred_sem_seg.data[0].numpy()
    expected = Segmenter.from_checkpoint(run / 'iter_1.pth', device='cpu',
                                         condition='fog').predict(photo)[0].label
    assert got.shape == (90, 250) and len(np.unique(expected)) > 1
    np.testing.assert_array_equal(got, expected)


def test_onnx_metadata_names_the_scale_and_the_dims(make_run, tmp_path):
    pytest.importorskip('onnxruntime')
    import json

    import onnx
    run = make_run()
    run_deploy(run / 'iter_1.pth', 'condition=fog', 'format=onnx', 'verify=false',
               f'out={tmp_path / "m.onnx"}')
    graph = onnx.load(str(tmp_path / 'm.onnx'))
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props['img_scale']) == [128, 64] and props['keep_ratio'] == 'true'
    assert 'img_scale [128, 64]' in props['resize'] and 'min(128 / max(w, h), 64 / min(w, h))' \
        in props['resize']
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ['batch', 'classes', 'height', 'width']


@pytest.mark.parametrize('condition', ['cityscapes', 'snow'])
def test_onnx_computes_the_domino_model(condition, make_run, tmp_path):
    pytest.importorskip('onnxruntime')  # the deploy extra
    from domino_seg.models.export import onnx_session
    run = make_run()
    report = run_deploy(run / 'iter_1.pth', f'condition={condition}', 'format=onnx',
                        f'out={tmp_path / "m.onnx"}')
    assert report['onnx_input_size'] == 'dynamic'
    assert set(report['onnx_max_difference']) == {'64x128', '96x192'}
    session = onnx_session(str(tmp_path / 'm.onnx'))
    model, cfg = domino_model(run)
    embedding = condition_embedding(cfg, 'clear' if condition == 'cityscapes' else condition)
    for h, w in [SIZE, (96, 64)]:  # dynamic height and width
        images = torch.rand(2, 3, h, w) * 255
        got = session.run(None, {'image': images.numpy()})[0]
        np.testing.assert_allclose(got, logits(model, images, embedding).numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_default_out_embedding_file_and_clip_tower(make_run, tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    run = make_run('head', 'zero_shot')
    model, cfg = domino_model(run)
    vector = condition_embedding(cfg, 'rain').numpy()
    np.save(tmp_path / 'rain.npy', vector)
    report = run_deploy(run / 'iter_1.pth', f'embedding={tmp_path / "rain.npy"}',
                        'format=onnx', 'clip_tower=true')
    assert report['out'] == str(run / 'iter_1_rain.onnx')
    assert report['clip_tower'] == str(run / 'iter_1_rain_clip_image.onnx')
    assert report['clip_tower_max_difference'] < 1e-5
    printed = capsys.readouterr().out
    assert 'no longer zero-shot' in printed and 'CLIP image tower' in printed
    # condition= in zero_shot mode folds the same embedding (the condition's text embedding)
    by_condition = run_deploy(run / 'iter_1.pth', 'condition=rain', f'out={tmp_path / "c.pth"}')
    assert 'with certainty' in by_condition['folded_for']
    import onnx
    props = {p.key: p.value for p in onnx.load(report['out']).metadata_props}
    fold = torch.load(tmp_path / 'c.pth', weights_only=True)['meta']['domino_fold']
    assert fold['embedding_sha256'] == props['embedding_sha256']


def test_model_without_domino_is_exported_as_it_is(make_run, tmp_path, capsys):
    run = make_run('none', 'none')
    report = run_deploy(run / 'iter_1.pth', 'condition=fog', f'out={tmp_path / "p.pth"}')
    assert 'nothing to fold: condition= ignored' in capsys.readouterr().out
    assert report['folded_for'] == 'nothing (no Domino layers)'
    saved = torch.load(tmp_path / 'p.pth', weights_only=True)['state_dict']
    original = torch.load(run / 'iter_1.pth', weights_only=True)['state_dict']
    assert saved.keys() == original.keys()
    assert all(torch.equal(saved[k], v) for k, v in original.items())


@pytest.mark.parametrize('overrides, message', [
    (['condition=hail'], "condition='hail' is not a condition of the prompt bank"),
    ([], 'name the domain to fold this domino=full model (domain=text) for: condition='),
    (['condition=fog', 'image=x.png'], 'condition=, image=: give only one; name the domain'),
    (['image=missing.png'], 'image= needs a model trained with image embeddings'),
    (['format=tflite'], "format='tflite': choose pth"),
    (['condition=fog', 'clip_tower=true'], 'clip_tower=true exports the CLIP image tower'),
    (['condition=fog', 'size=[16,16]'], 'size=[16, 16]: give [height,width]'),
])
def test_errors(overrides, message, make_run, fails):
    run = make_run()
    err = fails(lambda: run_deploy(run / 'iter_1.pth', *overrides))
    assert message in err
    if overrides == ['condition=hail']:
        from domino_seg.domain.prompts import load_prompt_bank
        bank = ', '.join(load_prompt_bank(None).conditions)
        assert f'choose one of {bank} (cityscapes = clear)' in err and 'fog, night' in bank


def test_more_errors(make_run, tmp_path, fails, monkeypatch):
    lonely = tmp_path / 'lonely.pth'
    shutil.copy(make_run() / 'iter_1.pth', lonely)
    assert 'no config.yaml beside it' in fails(lambda: run_deploy(lonely, 'condition=fog'))
    assert 'is not a file' in fails(lambda: run_deploy(tmp_path / 'none.pth', 'condition=fog'))
    image_run = make_run('full', 'image')
    assert 'trained on CLIP image embeddings' in fails(
        lambda: run_deploy(image_run / 'iter_1.pth', 'condition=fog'))
    np.save(tmp_path / 'short.npy', np.zeros(3))
    assert 'needs 64 finite numbers' in fails(
        lambda: run_deploy(make_run() / 'iter_1.pth', f'embedding={tmp_path / "short.npy"}'))
    monkeypatch.setitem(sys.modules, 'onnx', None)  # not installed
    err = fails(lambda: run_deploy(make_run() / 'iter_1.pth', 'condition=fog', 'format=onnx'))
    assert 'needs the onnx package' in err and 'pip install -e ".[deploy]"' in err


def test_help_lists_the_deploy_keys(tmp_path, tool_main):
    result = tool_main('deploy.py', ['--help'], tmp_path)
    assert result.returncode == 0, result.stderr
    keys = result.stdout.split('== Keys')[1]
    for key in ('checkpoint=??? (required)', 'condition=null', 'format=pth', 'clip_tower=false'):
        assert f'  {key}\n' in keys
    for key in ('resume=', 'load_from=', 'work_dir=', 'task='):
        assert f'  {key}' not in keys


@pytest.fixture(scope='module')
def trained(tiny_benchmark, tmp_path_factory):
    """A tiny Domino run of tools/train.py, and a copy of its checkpoint (beside it) with
    random Domino MLPs."""
    root = tmp_path_factory.mktemp('trained')
    overrides = [f'paths.synthetic={tiny_benchmark}', f'paths.work_dirs={root / "wd"}',
                 'data.generate.num_train=4', 'data.generate.num_val=2',
                 'data.generate.height=64', 'data.generate.width=128', *TINY,
                 'data.num_workers=0', 'schedule.max_iters=1', 'schedule.val_interval=1',
                 'schedule.batch_size=2', 'schedule.test_batch_size=5', 'log_interval=1',
                 'domino=full', 'domain=text', 'data.train_weather=[fog]',
                 f'work_dir={root / "run"}']
    train = run_tool('train.py', overrides, root)
    assert train.returncode == 0, train.stderr[-3000:]
    run = root / 'run'
    checkpoint = torch.load(run / 'iter_1.pth', weights_only=False)
    model, _ = domino_model(run)
    checkpoint['state_dict'] = randomize(model, seed=1).state_dict()
    torch.save(checkpoint, run / 'randomized.pth')
    return run


@pytest.mark.slow
def test_deploy_tool_end_to_end(trained, tmp_path, tool_main, tool_fails):
    """tools/deploy.py in its own process once; its onnx and error paths in this one."""
    pytest.importorskip('onnxruntime')
    from domino_seg.models.export import onnx_session
    checkpoint = trained / 'randomized.pth'
    model, cfg = domino_model(trained, 'randomized.pth')
    embedding = condition_embedding(cfg, 'fog')

    pth = run_tool('deploy.py', [f'checkpoint={checkpoint}', 'condition=fog'], tmp_path)
    assert pth.returncode == 0, pth.stderr[-3000:]
    out = trained / 'randomized_fog.pth'
    assert f'pth: {out}' in pth.stdout and 'exact: max |logit difference|' in pth.stdout
    assert 'domino=full, domain=text, as recorded in' in pth.stdout
    plain = domino_seg.build_segmentor(domino_seg.compose(TINY)).eval()
    plain.load_state_dict(torch.load(out, weights_only=True)['state_dict'], strict=True)
    images = torch.rand(1, 3, *SIZE) * 255
    torch.testing.assert_close(logits(plain, images), logits(model, images, embedding),
                               rtol=1e-5, atol=1e-5)

    onnx = tool_main('deploy.py', [f'checkpoint={checkpoint}', 'condition=fog', 'format=onnx',
                                   f'out={tmp_path / "fog.onnx"}'], tmp_path)
    assert onnx.returncode == 0, onnx.stderr[-3000:]
    assert 'onnxruntime vs PyTorch at 96x192' in onnx.stdout
    session = onnx_session(str(tmp_path / 'fog.onnx'))
    for h, w in [SIZE, (128, 96)]:
        images = torch.rand(1, 3, h, w) * 255
        np.testing.assert_allclose(session.run(None, {'image': images.numpy()})[0],
                                   logits(model, images, embedding).numpy(), rtol=1e-4,
                                   atol=1e-4)

    err = tool_fails('deploy.py', [f'checkpoint={checkpoint}', 'condition=hail'], tmp_path)
    assert 'is not a condition of the prompt bank' in err


def test_image_embedding(make_run, tmp_path):
    import mmcv
    from PIL import Image
    run = make_run('full', 'image')
    path = tmp_path / 'street.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8)).save(path)
    report = run_deploy(run / 'iter_1.pth', f'image={path}', f'out={tmp_path / "i.pth"}')
    assert report['folded_for'] == f'image={path}' and report['fold_max_difference'] < 1e-5
    _, cfg = domino_model(run)
    generator = DomainPromptGenerator(**domain_builder.generator_cfg(cfg.domain))
    expected = generator.embed_images([mmcv.imread(str(path))])[0].numpy()
    import hashlib
    fold = torch.load(tmp_path / 'i.pth', weights_only=True)['meta']['domino_fold']
    assert fold['embedding_sha256'] == hashlib.sha256(expected.tobytes()).hexdigest()


def snapshot(folder):
    """Every file below ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


@pytest.fixture
def own_run(make_run, tmp_path):
    """A copy of make_run()'s run folder with the mmengine_config.py a run records."""
    run = tmp_path / 'run'
    shutil.copytree(make_run(), run)
    (run / 'mmengine_config.py').write_text('# the mmengine config of the run\n')
    return run


def test_outputs_never_land_on_the_run_or_the_inputs(own_run, tmp_path, fails):
    checkpoint = own_run / 'iter_1.pth'
    np.save(tmp_path / 'rain.npy', np.eye(64, dtype=np.float32)[0])  # a valid embedding
    (tmp_path / 'notes.txt').write_text('mine')
    (tmp_path / 'models').mkdir()
    link = tmp_path / 'models' / 'fog.pth'
    link.symlink_to(tmp_path / 'notes.txt')
    before = snapshot(tmp_path)
    err = fails(lambda: run_deploy(checkpoint, 'condition=fog',
                                   f'out={own_run / "mmengine_config.pth"}'))
    assert f'{own_run}/mmengine_config.py exists in the folder of the run {own_run}' in err
    err = fails(lambda: run_deploy(checkpoint, 'condition=fog', f'out={tmp_path / "model.py"}'))
    assert "checkpoint's config is written beside it as <out without suffix>.py, which is this " \
        'name' in err
    err = fails(lambda: run_deploy(checkpoint, 'condition=fog', f'out={tmp_path / "models"}'))
    assert f"out='{tmp_path / 'models'}' is a folder; out= names the file to write" in err
    err = fails(lambda: run_deploy(checkpoint, 'condition=fog', f'out={checkpoint}'))
    assert f'{checkpoint} would overwrite the input {checkpoint}' in err
    err = fails(lambda: run_deploy(checkpoint, f'embedding={tmp_path / "rain.npy"}',
                                   f'out={tmp_path / "rain.npy"}'))
    assert f'{tmp_path / "rain.npy"} would overwrite the input' in err
    err = fails(lambda: run_deploy(checkpoint, 'condition=fog', f'out={link}'))
    assert f'{link} would be written outside {tmp_path / "models"} (it resolves to ' \
        f'{tmp_path / "notes.txt"})' in err
    assert snapshot(tmp_path) == before


def test_deploy_again_replaces_its_own_files_and_a_full_disk_keeps_them(own_run, fails,
                                                                         disk_full_after):
    checkpoint = own_run / 'iter_1.pth'
    report = run_deploy(checkpoint, 'condition=fog', 'verify=false')
    assert report['out'] == str(own_run / 'iter_1_fog.pth')
    run_deploy(checkpoint, 'condition=fog', 'verify=false')  # its own earlier files
    before = snapshot(own_run)
    disk_full_after(0)
    err = fails(lambda: run_deploy(checkpoint, 'condition=fog', 'verify=false'))
    assert f'could not write {own_run / "iter_1_fog.pth"}: the disk is full. Nothing was ' \
           'half-written: the previous iter_1_fog.pth is intact. Free space' in err
    assert snapshot(own_run) == before  # and no temporary file


def _save(path, array, **arrays):
    if arrays:
        np.savez(path, **arrays)
    else:
        np.save(path, array, allow_pickle=True)
    return path


def unit(dim=64, scale=1.0, dtype=np.float32):
    vector = np.random.default_rng(0).normal(size=dim)
    return (vector / np.linalg.norm(vector) * scale).astype(dtype)


@pytest.mark.parametrize('name, array, mode, message', [
    ('e.npz', None, 'text', 'is a .npz archive (arrays a, b), not one array'),
    ('e.npy', np.array(['0.1'] * 64), 'text', 'holds <U3 values, not real numbers'),
    ('e.npy', np.array([0.1] * 64, dtype=object), 'text', 'cannot be read as a .npy array'),
    ('e.npy', np.ones(64, bool), 'text', 'holds bool values, not real numbers'),
    ('e.npy', unit().astype(np.complex64), 'text', 'holds complex64 values, not real'),
    ('e.npy', np.stack([unit(), unit()]), 'text', 'holds an array of shape (2, 64)'),
    ('e.npy', np.full(64, np.nan, np.float32), 'text', 'needs 64 finite numbers'),
    ('e.npy', unit(scale=2), 'text', 'has norm 2: a domain=text embedding is normalised'),
    ('e.npy', unit(scale=0.5), 'image', 'has norm 0.5: a domain=image embedding is normalised'),
    ('e.npy', unit(scale=1.5), 'zero_shot', 'has norm 1.5: a domain=zero_shot embedding mixes'),
    ('empty.npy', b'', 'text', 'cannot be read as a .npy array'),
])
def test_embedding_files_are_checked(tmp_path, name, array, mode, message):
    """Each is refused with the fix, instead of a traceback or a silently folded vector."""
    from domino_seg.apis.deploy import _embedding_file
    from domino_seg.errors import ConfigError
    path = tmp_path / name
    if isinstance(array, bytes):
        path.write_bytes(array)
    else:
        _save(path, array, **({'a': unit(), 'b': unit()} if name.endswith('.npz') else {}))
    with pytest.raises(ConfigError) as err:
        _embedding_file(str(path), 64, mode)
    assert message in str(err.value) and f'embedding={str(path)!r}' in str(err.value)


@pytest.mark.parametrize('array, mode', [
    (unit(), 'text'), (unit()[None], 'image'), (unit(dtype=np.float16), 'text'),
    (np.eye(64, dtype=np.int64)[3], 'text'),  # a one-hot vector is normalised
    (unit(scale=0.6), 'zero_shot'),  # a mix of normalised embeddings
])
def test_embedding_files_of_the_model_are_used_as_they_are(tmp_path, array, mode):
    from domino_seg.apis.deploy import _embedding_file
    path = _save(tmp_path / 'e.npy', array)
    got = _embedding_file(str(path), 64, mode)
    assert got.dtype == np.float32 and got.shape == (64,)
    np.testing.assert_array_equal(got, array.reshape(64).astype(np.float32))


def test_a_bad_embedding_file_stops_the_tool(make_run, tmp_path, fails):
    path = _save(tmp_path / 'raw.npy', unit(scale=7))
    err = fails(lambda: run_deploy(make_run() / 'iter_1.pth', f'embedding={path}'))
    assert f"embedding='{path}' has norm 7: a domain=text embedding is normalised" in err
    assert not (make_run() / 'iter_1_raw.pth').exists()
