"""Every config group option composes, translates to an mmengine Config and instantiates."""
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import domino_seg
from domino_seg.config_files import CONFIG_DIR
from domino_seg.errors import ConfigError
from domino_seg.models.domino_norm import DEFAULT_MLP
from domino_seg.presets import loo_presets
from domino_seg.tool_help import documented_keys

GROUPS = ['model', 'finetune', 'data', 'schedule', 'domino', 'domain']


def options(group):
    return sorted(p.stem for p in (CONFIG_DIR / group).glob('*.yaml') if p.stem[0] != '_')


def domain_for(domino):
    # Domino layers need an embedding; pair them with the text mode
    return [] if domino == 'none' else ['domain=text']


@pytest.mark.parametrize('group,option', [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_and_translates(group, option, tiny_model):
    overrides = [f'{group}={option}'] + (domain_for(option) if group == 'domino' else []) + \
        (tiny_model[option] if group == 'model' else [])
    cfg = domino_seg.compose(overrides)
    mm = domino_seg.to_mmengine(cfg)
    assert mm.model.type in ('EncoderDecoder', 'DomainAwareEncoderDecoder')
    assert mm.train_cfg.max_iters == cfg.schedule.max_iters


@pytest.mark.parametrize('exp', options('exp'))
def test_every_experiment_composes(exp):
    # (backbone weights are not on this machine; whether they are found is tested elsewhere)
    cfg = domino_seg.compose([f'+exp={exp}', 'model.pretrained=null'])
    assert cfg.exp_name == exp
    mm = domino_seg.to_mmengine(cfg)
    conditions = [d.get('condition', 'cityscapes') for d in mm.test_dataloader.dataset.datasets]
    assert conditions == list(cfg.data.eval_conditions)
    assert conditions[0] == 'cityscapes'
    if exp in ('acdc_fog', 'acdc_night', 'acdc_rain', 'acdc_snow'):  # the data-only presets
        assert conditions == ['cityscapes', exp[5:]]


def test_the_loo_presets_are_written_from_their_protocol():
    """The leave-one-out presets (configs/exp/*_loo_*.yaml) are what their protocol file,
    exp/_loo_<protocol>.yaml, writes: each held-out condition is the one the preset leaves
    out of training, and none is stale (run python -m domino_seg.presets)."""
    presets = loo_presets()
    assert sorted(p.name for p in presets) == sorted(
        p.name for p in (CONFIG_DIR / 'exp').glob('*_loo_*.yaml') if p.name[0] != '_')
    assert len(presets) == 8
    for path, text in presets.items():
        assert path.read_text() == text, f'{path} is stale: python -m domino_seg.presets'
        cfg = domino_seg.compose([f'+exp={path.stem}'])
        held_out = path.stem.rpartition('_')[2]
        trained = [s.get('condition', 'cityscapes') for s in cfg.data.train_sources]
        assert trained == [c for c in cfg.data.eval_conditions if c != held_out]


def test_the_language_protocols_are_experiments():
    assert {'synthetic_compose', 'synthetic_severity'} <= set(options('exp'))


@pytest.mark.parametrize('model', options('model'))
@pytest.mark.parametrize('domino', options('domino'))
def test_every_model_builds(model, domino, tiny_model):
    # GPU-sized models at a tiny size (their full size: test_full_size_models_build)
    cfg = domino_seg.compose([f'model={model}', f'domino={domino}'] + domain_for(domino) +
                             tiny_model[model])
    segmentor = domino_seg.build_segmentor(cfg)
    assert sum(p.numel() for p in segmentor.parameters()) > 0


# parameters (millions) of the full-size models, as in docs/configs.md "Backbones" (19 classes)
FULL_SIZE_PARAMS = {'segformer_mit_tiny': (0.9, 0.8), 'clip_vit_b16_upernet': (128.3, 87.2),
                    'clip_rn50_deeplabv3plus': (43.6, 23.5), 'dinov2_vits14_upernet': (54.3, 22.6),
                    'dinov2_vitb14_upernet': (128.7, 87.6),
                    'resnet50_deeplabv3plus': (43.6, 23.5), 'efficientnet_lite0_mlp': (3.1, 3.0)}


@pytest.mark.slow
@pytest.mark.parametrize('model', options('model'))
def test_full_size_models_build(model):
    cfg = domino_seg.compose([f'model={model}', 'model.pretrained=null', 'data=cityscapes_acdc'])
    segmentor = domino_seg.build_segmentor(cfg)
    millions = [round(sum(p.numel() for p in part.parameters()) / 1e6, 1)
                for part in (segmentor, segmentor.backbone)]
    assert tuple(millions) == FULL_SIZE_PARAMS[model]


def test_default_is_the_synthetic_benchmark():
    cfg = domino_seg.compose()
    assert cfg.data.name == 'synthetic'
    assert list(cfg.data.eval_conditions) == ['cityscapes', 'fog', 'night', 'rain', 'snow']
    assert cfg.paths.cityscapes == 'data/cityscapes' and cfg.paths.acdc == 'data/acdc'


def test_the_domino_mlp_defaults_are_written_once():
    """The domino options take the MLP's defaults from the models (DEFAULT_MLP), not from a
    copy in the YAML, and --help still shows what domino.mlp is."""
    for option in ('backbone', 'head', 'full'):
        mlp = domino_seg.compose([f'domino={option}', 'domain=text']).domino.mlp
        assert OmegaConf.to_container(mlp) == DEFAULT_MLP
    assert not [p.name for p in (CONFIG_DIR / 'domino').glob('*.yaml')
                if 'hidden:' in p.read_text()]
    assert documented_keys(CONFIG_DIR / 'domino', 'head')['mlp'].startswith(
        "The small network that predicts each norm layer's scale and shift")


def test_test_config_shares_training_overrides():
    cfg = domino_seg.compose(['+exp=acdc_fog', 'checkpoint=x.pth'], config_name='test')
    assert cfg.task == 'test' and cfg.checkpoint == 'x.pth'
    assert list(cfg.data.eval_conditions) == ['cityscapes', 'fog']


def test_saved_predictions_and_their_colours_configure_the_test_metric(tmp_path):
    cfg = domino_seg.compose(['checkpoint=x.pth', f'work_dir={tmp_path}', 'save_predictions=true',
                              'prediction_colors=true', 'submission=cityscapes'],
                             config_name='test')
    mm = domino_seg.to_mmengine(cfg)
    assert mm.test_evaluator[0].output_dir == str(tmp_path / 'predictions')
    assert mm.test_evaluator[0].prediction_colors is True
    assert dict(type='CityscapesSubmissionHook', out_dir=str(tmp_path / 'submission')) in \
        mm.custom_hooks


def test_prediction_colors_without_saved_predictions_is_an_error():
    cfg = domino_seg.compose(['checkpoint=x.pth', 'prediction_colors=true'], config_name='test')
    with pytest.raises(ConfigError, match=r'prediction_colors=true writes a colour PNG beside '
                                          r'each saved prediction, but none is saved: add '
                                          r'save_predictions=true\.'):
        domino_seg.to_mmengine(cfg)


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigCompositionException, match='schedule.max_iter'):
        domino_seg.compose(['schedule.max_iter=3'])


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException) as err:
        domino_seg.compose(['data=cityscape'])
    assert 'synthetic' in str(err.value) and 'cityscapes_acdc' in str(err.value)


def test_configs_live_in_the_repository():
    assert CONFIG_DIR == Path(__file__).resolve().parents[1] / 'configs'


def test_no_domain_embedding_without_domino():
    """domino=none reads no embedding, so none is computed (no CLIP is built)."""
    for domino, expected in (('none', False), ('head', True)):
        mm = domino_seg.to_mmengine(domino_seg.compose([f'domino={domino}', 'domain=text']))
        types = [t['type'] for t in mm.train_dataloader.dataset.datasets[0].pipeline]
        assert ('DomainEmbeddingInputs' in types) is expected
        assert ('DomainEmbeddingInputs' in [t['type'] for t in mm.test_dataloader.dataset
                                            .datasets[0].pipeline]) is expected
        assert (mm.model.data_preprocessor.type == 'DomainEmbeddingDataPreProcessor') is expected


def test_the_runtime_config_text_is_not_formatted_by_yapf(monkeypatch, tmp_path):
    """A run reads pretty_text for the log, the visualizer, mmengine_config.py and each
    checkpoint: mmengine's text without yapf (which took ~1 s of each start-up), still a
    config Config.fromfile reads back, edits included."""
    import mmengine.config.config as mm_config
    from mmengine.config import Config

    monkeypatch.setattr(mm_config, 'FormatCode',
                        lambda *args, **kwargs: pytest.fail('yapf formatted the run config'))
    mm = domino_seg.to_mmengine(domino_seg.compose([]))
    mm.train_cfg.max_iters = 7
    text = mm.pretty_text
    assert text == Config(mm.to_dict(), format_python_code=False).pretty_text
    (tmp_path / 'mmengine_config.py').write_text(text)
    reread = Config.fromfile(str(tmp_path / 'mmengine_config.py'))
    assert reread.train_cfg.max_iters == 7
    assert reread.to_dict() == mm.to_dict()
