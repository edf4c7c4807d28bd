"""``--help`` of each tool: the config groups it composes and the keys it reads, with the
comments of the YAML that defines them (Hydra's own help lists every group of the config
folder, internal ones included). Each tool's YAML sets ``hydra.help.template`` to the
``tool_help`` resolver: ``${tool_help:NAME,[keys to leave out]}``."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

from omegaconf import DictConfig

_KEY = re.compile(r'^([A-Za-z_]\w*):(.*)$')


def documented_keys(config_dir: Path, name: str) -> dict[str, str]:
    """Top-level keys of ``<config_dir>/<name>.yaml`` and of the primary configs its defaults
    list extends (e.g. test -> train), each with the comment above it or beside it."""
    path = config_dir / f'{name}.yaml'
    keys: dict[str, str] = {}
    comment: list[str] = []
    in_defaults = False
    for line in path.read_text().splitlines():
        if line.startswith('#'):
            comment.append(line.lstrip('#').strip())
            continue
        match = _KEY.match(line)
        if match:
            key, rest = match.groups()
            in_defaults = key == 'defaults'
            inline = rest.split(' #', 1)[1].strip() if ' #' in rest else ''
            if key not in ('defaults', 'hydra'):
                keys[key] = ' '.join(comment + ([inline] if inline else []))
            comment = []
        elif in_defaults and re.match(r'^\s+- (\w+)\s*$', line):
            parent = line.strip()[2:].strip()
            if parent != '_self_' and (config_dir / f'{parent}.yaml').is_file():
                keys = {**documented_keys(config_dir, parent), **keys}
        elif not line.strip():
            comment = []
    return keys


def _options(config_dir: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir / group).glob('*.yaml')
                  if not p.stem.startswith('_'))


def _header(config_dir: Path, name: str) -> str:
    lines = []
    for line in (config_dir / f'{name}.yaml').read_text().splitlines():
        if not line.startswith('#'):
            break
        lines.append(line.lstrip('#').strip())
    return '\n'.join(lines)


def _value(value) -> str:
    from omegaconf import OmegaConf
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    text = 'null' if value is None else str(value).lower() if isinstance(value, bool) else \
        str(value)
    return text.replace(' ', '')


# folders of configs/ whose files are read by path, not chosen as group options: prompt banks
NOT_GROUPS = ('domain/prompts',)


def help_text(tool: str, hidden=(), *, _root_: DictConfig) -> str:
    """The help of ``tools/<tool>.py``: its usage, the groups with a choice to make (two or
    more options not starting with ``_``), and its top-level keys with their defaults."""
    from domino_seg.config import CONFIG_DIR
    from omegaconf import OmegaConf
    choices = dict(OmegaConf.select(_root_, 'hydra.runtime.choices', default={}) or {})
    groups = [g for g in choices if not g.startswith('hydra')]
    if 'model' in groups:  # experiments (+exp=NAME) apply to the tools that build a model
        groups.append('exp')
    lines = [_header(CONFIG_DIR, tool), '']
    groups += [f'{g}/{sub.name}' for g in list(groups) if (CONFIG_DIR / g).is_dir()
               for sub in sorted((CONFIG_DIR / g).iterdir())
               if sub.is_dir() and f'{g}/{sub.name}' not in NOT_GROUPS]
    shown = [g for g in sorted(set(groups)) if len(_options(CONFIG_DIR, g)) > 1]
    if shown:
        lines.append('== Config groups (group=option; +exp=NAME for an experiment) ==')
        for group in shown:
            current = choices.get(group)
            lines += textwrap.wrap(', '.join(f'{o} (default)' if o == current else o
                                             for o in _options(CONFIG_DIR, group)), 90,
                                   initial_indent=f'  {group}: ', subsequent_indent=' ' * 6)
        lines.append('')
    lines.append('== Keys (key=value) ==')
    for key, doc in documented_keys(CONFIG_DIR, tool).items():
        if key in hidden or key not in _root_.keys():
            continue
        default = '??? (required)' if OmegaConf.is_missing(_root_, key) else '(computed)' \
            if OmegaConf.is_interpolation(_root_, key) else _value(_root_[key])
        lines.append(f'  {key}={default}')
        lines += textwrap.wrap(doc, 90, initial_indent=' ' * 6, subsequent_indent=' ' * 6)
    if shown:
        lines += ['', 'Keys inside a group are overridden the same way (e.g. '
                  'schedule.max_iters=500, data.crop_size=[512,1024]).']
    lines.append(f'The composed config: python tools/{tool}.py [overrides] --cfg job')
    return '\n'.join(lines) + '\n'
