"""A new text encoder backend is one module and one YAML option of
configs/domain/text_encoder/: tried as a contributor would, from outside the package (a module
on the path, an option on Hydra's search path naming it in its imports)."""
import sys

import pytest
import torch
import torch.nn.functional as F

import domino_seg
from domino_seg.domain import builder
from domino_seg.domain.clip_generator import DomainPromptGenerator
from domino_seg.domain.prompts import load_prompt_bank
from domino_seg.errors import ConfigError
from domino_seg.registry import TEXT_ENCODERS

MODULE = '''
from dataclasses import dataclass

import torch
from omegaconf import MISSING

from domino_seg.domain.text_encoder import TextEncoder, TextEncoderBackend
from domino_seg.registry import TEXT_ENCODERS


@dataclass
class LettersConfig(TextEncoder):
    dim: int = MISSING


def letters(prompt, dim):
    counts = torch.zeros(dim)
    for char in prompt.lower():
        if char.isalpha():
            counts[(ord(char) - ord('a')) % dim] += 1
    return counts / counts.norm()


@TEXT_ENCODERS.register_module('letters')
class LetterCounts(TextEncoderBackend):
    """A prompt's letter counts folded into ``dim`` bins: an encoder without weights."""
    Config = LettersConfig
    has_language_meaning = False

    @classmethod
    def configured_dim(cls, domain):
        return domain.text_encoder.dim

    def __init__(self, dim):
        self.embed_dim = dim

    def encode_text(self, prompts):
        return torch.stack([letters(prompt, self.embed_dim) for prompt in prompts])
'''

OPTION = '''
backend: letters
imports: [letter_counts]
dim: 12
'''


@pytest.fixture
def letters_overrides(tmp_path, monkeypatch):
    """The module and the option, written outside the package; the overrides selecting them.
    The backend is unregistered afterwards, so no other test sees it."""
    (tmp_path / 'letter_counts.py').write_text(MODULE)
    (tmp_path / 'configs/domain/text_encoder').mkdir(parents=True)
    (tmp_path / 'configs/domain/text_encoder/letters.yaml').write_text(OPTION)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ['domain=text', 'domain/text_encoder=letters', 'domino=head',
           f'hydra.searchpath=[file://{tmp_path / "configs"}]']
    TEXT_ENCODERS.module_dict.pop('letters', None)
    sys.modules.pop('letter_counts', None)


def test_an_encoder_from_one_module_and_one_yaml_option(letters_overrides):
    cfg = domino_seg.compose(letters_overrides)
    letters = sys.modules['letter_counts'].letters
    assert builder.embed_dim(cfg.domain) == 12
    assert builder.describe(cfg.domain) == dict(mode='text', encoder='letters', weights=None,
                                                has_language_meaning=False)
    generator_cfg = builder.generator_cfg(cfg.domain)
    assert generator_cfg == dict(mode='text', temperature=0.01, prompt_bank=None,
                                 text_encoder=dict(type='letters', dim=12))
    generator = DomainPromptGenerator(**generator_cfg)
    fog = load_prompt_bank().prompts['fog']
    expected = F.normalize(torch.stack([letters(p, 12) for p in fog]).mean(0), dim=0)
    torch.testing.assert_close(generator.embed_conditions(['fog'])[0], expected)
    assert domino_seg.build_segmentor(cfg).domain_encoder[0].in_features == 12
    assert 'letter_counts' in domino_seg.to_mmengine(cfg).custom_imports.imports


@pytest.mark.parametrize('override,message', [
    ('domain.text_encoder.dim=abc', "domain.text_encoder.dim takes an integer, got 'abc'"),
    ('+domain.text_encoder.dims=3', 'Did you mean domain.text_encoder.dim (without +)?'),
    ('+domain.text_encoder.path=/x', 'domain.text_encoder.path is not a key of this config'),
])
def test_its_option_is_checked_against_its_config(letters_overrides, override, message):
    with pytest.raises(ConfigError) as err:
        domino_seg.compose(letters_overrides + [override])
    assert message in str(err.value)


def test_an_image_mode_needs_an_image_tower(letters_overrides):
    cfg = domino_seg.compose(letters_overrides + ['domain=zero_shot'])
    with pytest.raises(ConfigError, match=r'domain=zero_shot needs an image tower, and the text '
                                          r'encoder domain/text_encoder \(letters\) has none'):
        builder.embed_dim(cfg.domain)


def test_an_unknown_backend_or_module_is_a_config_error():
    """A misspelt backend used to embed with CLIP, silently."""
    with pytest.raises(ConfigError) as err:
        domino_seg.compose(['domain=text', 'domain.text_encoder.backend=open_clp'])
    assert str(err.value).startswith(
        "domain.text_encoder.backend=open_clp: domain.text_encoder.backend='open_clp' is not a "
        'text encoder backend; registered: hf, open_clip.')
    with pytest.raises(ConfigError, match="domain.text_encoder.imports: module 'no_such_module' "
                                          'cannot be imported'):
        domino_seg.compose(['domain=text', '+domain.text_encoder.imports=[no_such_module]'])
