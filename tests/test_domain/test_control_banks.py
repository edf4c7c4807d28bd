"""The nonce-word control banks: the conditions and templates of their source bank, described
by words that share nothing with the source's descriptions nor between conditions."""
import re
from pathlib import Path

import pytest
import yaml

from domino_seg.domain.prompts import load_prompt_bank

PROMPTS = Path(__file__).resolve().parents[2] / 'configs' / 'domain' / 'prompts'
PAIRS = [('weather_nonce.yaml', 'weather.yaml'),
         ('weather_attributes_nonce.yaml', 'weather_attributes.yaml')]


def descriptions(name):
    """Condition -> its descriptions, as the file lists them."""
    conditions = yaml.safe_load((PROMPTS / name).read_text())['conditions']
    return {c: [d] if isinstance(d, str) else d for c, d in conditions.items()}


def words(texts):
    return {word for text in texts for word in re.findall(r"[a-z']+", text.lower())}


@pytest.mark.parametrize('nonce,source', PAIRS)
def test_nonce_bank_has_the_conditions_and_templates_of_its_source(nonce, source):
    bank, original = load_prompt_bank(PROMPTS / nonce), load_prompt_bank(PROMPTS / source)
    assert bank.conditions == original.conditions
    assert bank.templates == original.templates
    assert [len(p) for p in bank.prompts.values()] == [len(p) for p in original.prompts.values()]
    assert bank.content_hash != original.content_hash


@pytest.mark.parametrize('nonce,source', PAIRS)
def test_nonce_descriptions_share_no_word_with_the_source_or_between_conditions(nonce, source):
    source_words = words(d for ds in descriptions(source).values() for d in ds)
    assert {'in', 'a', 'at', 'fog', 'night'} <= source_words  # (the test reads the words)
    per_condition = {c: words(ds) for c, ds in descriptions(nonce).items()}
    for condition, used in per_condition.items():
        assert used and not used & source_words, (condition, used & source_words)
        others = set().union(*(w for c, w in per_condition.items() if c != condition))
        assert not used & others, (condition, used & others)


def test_the_two_nonce_banks_describe_a_shared_condition_alike():
    small, large = descriptions('weather_nonce.yaml'), descriptions('weather_attributes_nonce.yaml')
    assert {c: large[c] for c in small} == small
