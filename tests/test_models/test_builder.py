"""models/builder.py: what building a segmentor config says about its weights."""
import pytest

from domino_seg import compose
from domino_seg.models import builder


def _log_of_building(overrides, monkeypatch, load_pretrained=True):
    logged = []
    monkeypatch.setattr(builder, 'print_log', lambda msg, **kw: logged.append(msg))
    cfg = compose(overrides)
    builder.segmentor_cfg(cfg.model, cfg.domino, None, cfg.finetune,
                          load_pretrained=load_pretrained)
    return '\n'.join(logged)


@pytest.mark.parametrize('model', ['dinov2_vitb14_upernet', 'clip_vit_b16_upernet'])
def test_a_foundation_backbone_without_weights_warns(model, monkeypatch):
    text = _log_of_building([f'model={model}', 'model.pretrained=null'], monkeypatch)
    assert f'model.pretrained is null: the {model} backbone starts from random weights' in text


@pytest.mark.parametrize('overrides, load_pretrained', [
    ([], True),  # the CPU default has no pretrained weights to miss
    (['model=dinov2_vitb14_upernet', 'model.pretrained=null'], False),  # a checkpoint follows
])
def test_no_warning_when_random_weights_are_the_default_or_replaced(overrides, load_pretrained,
                                                                    monkeypatch):
    assert 'starts from random weights' not in _log_of_building(overrides, monkeypatch,
                                                                load_pretrained)
