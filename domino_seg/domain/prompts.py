"""The prompt bank: which text prompts describe each weather/lighting condition.

A bank is a YAML file (format documented at the top of ``configs/domain/prompts/weather.yaml``)
expanded to ``condition -> prompts``. Its ``content_hash`` depends only on that expansion, so
comments or layout changes in the file keep cached results valid while any prompt change does not.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import yaml

from domino_seg.errors import ConfigError

DEFAULT_PROMPT_BANK = Path(__file__).resolve().parents[2] / 'configs/domain/prompts/weather.yaml'
BANK_KEYS = ('templates', 'conditions', 'prompts')


class PromptBankError(ConfigError):
    """A prompt bank file that cannot be used; the message names the file and the key."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise PromptBankError(
                    f'duplicate key {key!r} (line {key_node.start_mark.line + 1})')
            seen.add(key)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class PromptBank:
    """Condition name -> its prompts (non-empty), in file order; ``templates`` are the
    bank's, kept so that other descriptions can be embedded as its conditions are."""

    prompts: dict[str, tuple[str, ...]]
    source: str
    templates: tuple[str, ...] = ()

    @property
    def conditions(self) -> list[str]:
        return list(self.prompts)

    @property
    def content_hash(self) -> str:
        canonical = json.dumps([[c, list(p)] for c, p in self.prompts.items()], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_prompt_bank(path: Union[str, Path, None] = None) -> PromptBank:
    """Read and validate a bank file; ``None`` means the default weather bank."""
    path = Path(path) if path is not None else DEFAULT_PROMPT_BANK
    if not path.is_file():
        raise PromptBankError(f'prompt bank file not found: {path}')
    try:
        data = yaml.load(path.read_text(encoding='utf-8'), Loader=_UniqueKeyLoader)
    except (PromptBankError, yaml.YAMLError) as error:
        raise PromptBankError(f'{path}: {error}') from error
    return prompt_bank_from_dict(data, source=str(path))


def prompt_bank_from_dict(data, source: str = '<dict>') -> PromptBank:
    """Validate a parsed bank and expand templates x descriptions (+ verbatim prompts)."""

    def fail(message):
        raise PromptBankError(f'{source}: {message}')

    def string_list(value, key):
        values = [value] if isinstance(value, str) else value
        if not (isinstance(values, list)
                and all(isinstance(v, str) and v.strip() for v in values)):
            fail(f'{key} must be a non-empty string or a list of non-empty strings, got {value!r}')
        return values

    if data is None:
        fail(f'the file is empty; expected a mapping with keys {list(BANK_KEYS)}')
    if not isinstance(data, dict):
        fail(f'expected a mapping with keys {list(BANK_KEYS)}, got {type(data).__name__}')
    unknown = sorted(set(data) - set(BANK_KEYS))
    if unknown:
        fail(f'unknown key(s) {unknown}; allowed: {list(BANK_KEYS)}')

    templates = string_list(data.get('templates', []), 'templates')
    for template in templates:
        if template.count('{}') != 1:
            fail(f"template {template!r} in 'templates' must contain exactly one '{{}}'")

    conditions = data.get('conditions')
    if not isinstance(conditions, dict) or not conditions:
        fail("'conditions' must be a non-empty mapping of condition -> description(s): "
             'the bank is empty')
    verbatim = data.get('prompts') or {}
    if not isinstance(verbatim, dict):
        fail("'prompts' must be a mapping of condition -> list of prompts")
    stray = sorted(set(verbatim) - set(conditions))
    if stray:
        fail(f"'prompts' names condition(s) {stray} that are not listed under 'conditions'")

    prompts = {}
    for condition, descriptions in conditions.items():
        if not isinstance(condition, str) or not condition.strip():
            fail(f'condition names must be non-empty strings, got {condition!r}')
        descriptions = string_list(descriptions, f'conditions.{condition}') if descriptions else []
        extra = (string_list(verbatim[condition], f'prompts.{condition}')
                 if condition in verbatim else [])
        expanded = [t.replace('{}', d) for d in descriptions for t in templates] + extra
        if not expanded:
            fail(f"condition '{condition}' has no prompts: give it descriptions (with at least "
                 "one template) or list full prompts under 'prompts'")
        prompts[condition] = tuple(expanded)
    return PromptBank(prompts=prompts, source=source, templates=tuple(templates))
