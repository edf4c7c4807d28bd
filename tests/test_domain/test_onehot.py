"""domain=onehot: a seen condition's code is its one-hot vector (bank order, width = the run's
seen conditions), an unseen one's the mean of the seen codes; no text is encoded and the
configs say it carries no language meaning."""
import numpy as np
import pytest
import torch
from mmseg.registry import TRANSFORMS

import domino_seg
from domino_seg.apis import run
from domino_seg.domain import builder
from domino_seg.domain.embedder import DomainEmbedder, inputs_transform_cfg
from domino_seg.domain.onehot import OneHotCodes

CPU = torch.device('cpu')
ONEHOT = ['domino=head', 'domain=onehot']


def test_codes_of_seen_conditions_and_the_mean_for_the_others():
    """Column k is the k-th seen condition; a bank condition not seen gets the mean code."""
    codes = OneHotCodes(['clear', 'fog', 'night', 'rain'], seen=['night', 'clear', 'night'])
    assert codes.seen == ['night', 'clear'] and codes.embed_dim == 2
    assert codes.codes.tolist() == [[0, 1], [0.5, 0.5], [1, 0], [0.5, 0.5]]
    assert codes.has_language_meaning is False
    with pytest.raises(ValueError, match='embed no text'):
        codes.encode_text(['a photo in fog.'])
    with pytest.raises(ValueError, match=r"seen conditions of the prompt bank .*\['sandstorm'\]"):
        OneHotCodes(['clear', 'fog'], seen=['sandstorm'])


def test_the_run_embeds_each_sample_by_its_condition(tiny_overrides):
    """Training sees cityscapes (clear) and the fog and night augmentation: 3-d codes; rain,
    snow and a Dark-Zurich-like prompt_condition get the mean, 1/3 each."""
    cfg = domino_seg.compose(tiny_overrides + ONEHOT + ['data.train_weather=[night,fog]'])
    assert list(cfg.domain.seen) == ['cityscapes', 'night', 'fog']
    assert builder.embed_dim(cfg.domain) == 3
    assert builder.describe(cfg.domain) == dict(mode='onehot', encoder='onehot', weights=None,
                                                has_language_meaning=False,
                                                seen=['clear', 'night', 'fog'])
    generator = builder.generator_cfg(cfg.domain)
    step = TRANSFORMS.build(inputs_transform_cfg(generator))
    embedder = DomainEmbedder(generator)
    image = np.zeros((8, 8, 3), np.uint8)
    samples = [step({'img': image, 'condition': c}) for c in
               ('cityscapes', 'fog', 'night', 'rain', 'snow')]
    samples.append(step({'img': image, 'condition': 'cityscapes', 'prompt_condition': 'night'}))
    third = np.float32(1 / 3)  # the codes are float32
    assert embedder(samples, CPU).tolist() == [
        [1, 0, 0], [0, 0, 1], [0, 1, 0], [third] * 3, [third] * 3, [0, 1, 0]]  # seen order
    assert embedder.generator(CPU).has_language_meaning is False


def test_a_seen_condition_outside_the_bank_fails_up_front(overrides, fails):
    cfg = domino_seg.compose(overrides + ONEHOT + ['data.seen_conditions=[sandstorm]'])
    err = fails(lambda: run.train(cfg))
    assert "has no condition(s) ['sandstorm'], which domain=onehot embeds" in err
    assert 'domain.prompt_bank' in err


def test_no_seen_condition_fails_up_front(overrides, fails):
    """No code to give (say, a hand-edited config.yaml): stopped before anything is built."""
    cfg = domino_seg.compose(overrides + ONEHOT + ['domain.seen=[]'])
    err = fails(lambda: run.train(cfg))
    assert 'error: domain.seen is empty: domain=onehot gives each seen (training) condition a ' \
        'code' in err


def test_the_segmentor_gets_domino_layers_of_the_code_width(tiny_overrides):
    cfg = domino_seg.compose(tiny_overrides + ONEHOT + ['data.train_weather=[fog]'])
    model = domino_seg.to_mmengine(cfg).model
    assert model['domino']['embed_dim'] == 2
    assert model['data_preprocessor']['embedder']['generator'] == dict(
        mode='onehot', temperature=0.01, prompt_bank=None, seen=['clear', 'fog'])
