"""Prompt bank: the default bank, its content hash, and every validation error."""
import pytest

from domino_seg.domain.prompts import (
    DEFAULT_PROMPT_BANK,
    PromptBankError,
    load_prompt_bank,
    prompt_bank_from_dict,
)

REQUIRED = ['clear', 'fog', 'night', 'rain', 'snow', 'overcast', 'dusk']


def write(tmp_path, text, name='bank.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_bank_expands_templates_times_descriptions():
    bank = load_prompt_bank()
    assert bank.source == str(DEFAULT_PROMPT_BANK)
    assert bank.conditions[:len(REQUIRED)] == REQUIRED
    fog = bank.prompts['fog']
    assert len(fog) >= 4 and len(set(fog)) == len(fog)
    assert 'a photo of a street scene in dense fog.' in fog
    assert all('{}' not in prompt for prompts in bank.prompts.values() for prompt in prompts)


def test_verbatim_prompts_and_file_order(tmp_path):
    bank = load_prompt_bank(write(tmp_path, """
templates: ["a street {}."]
conditions:
  rain: in the rain
  night: []
prompts:
  night: ["a dark street."]
  rain: ["a wet road."]
"""))
    assert bank.prompts == {'rain': ('a street in the rain.', 'a wet road.'),
                            'night': ('a dark street.',)}


def test_content_hash_tracks_prompts_not_layout(tmp_path):
    text = 'templates: ["a street {}."]\nconditions: {fog: in fog, rain: in rain}\n'
    base = load_prompt_bank(write(tmp_path, text, 'a.yaml')).content_hash
    assert load_prompt_bank(write(tmp_path, text, 'a.yaml')).content_hash == base
    reformatted = ('# comment\ntemplates:\n  - "a street {}."\n'
                   'conditions:\n  fog: [in fog]\n  rain: in rain\n')
    assert load_prompt_bank(write(tmp_path, reformatted, 'b.yaml')).content_hash == base
    changed = text.replace('in fog', 'in thick fog')
    assert load_prompt_bank(write(tmp_path, changed, 'c.yaml')).content_hash != base


@pytest.mark.parametrize('text, expected', [
    ('templates: ["a {}."]\nconditions: {}\n', 'bank is empty'),
    ('templates: ["a {}."]\n', 'bank is empty'),
    ('templates: ["a {}."]\nconditions: {fog: []}\n', "condition 'fog' has no prompts"),
    ('conditions: {fog: in fog}\n', "condition 'fog' has no prompts"),
    ('templates: ["a street."]\nconditions: {fog: in fog}\n', "template 'a street.'"),
    ('templates: ["a {} {}."]\nconditions: {fog: in fog}\n', "template 'a {} {}.'"),
    ('templates: ["a {}."]\nconditions:\n  fog: in fog\n  fog: foggy\n',
     "duplicate key 'fog' (line 4)"),
    ('templates: ["a {}."]\nconditions: {fog: in fog}\nextra: 1\n', "unknown key(s) ['extra']"),
    ('templates: ["a {}."]\nconditions: {fog: in fog}\nprompts: {hail: [hail]}\n',
     "condition(s) ['hail'] that are not listed"),
    ('templates: ["a {}."]\nconditions: {fog: [in fog, 3]}\n', 'conditions.fog must be'),
    ('- just a list\n', 'expected a mapping'),
    ('templates: [\n', 'while parsing'),
])
def test_invalid_banks_name_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(PromptBankError) as error:
        load_prompt_bank(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(PromptBankError, match='not found: .*nope.yaml'):
        load_prompt_bank(tmp_path / 'nope.yaml')


def test_from_dict_names_its_source():
    with pytest.raises(PromptBankError, match='^my-bank: .*bank is empty'):
        prompt_bank_from_dict({'conditions': {}}, source='my-bank')
