"""``--help`` of each tool: the config groups it composes and the keys it reads, with the
comments of the YAML that defines them (Hydra's own help lists every group of the config
folder, internal ones included). Each tool's YAML sets ``hydra.help.template`` to the
``tool_help`` resolver: ``${tool_help:NAME,[keys to leave out],[group keys to list]}``. Also
the errors for a command line that leaves a required key unset or gives ``--key value``
flags, which name what the tool takes instead."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

from omegaconf import DictConfig

from domino_seg import config_files

_KEY = re.compile(r'^([A-Za-z_]\w*):(.*)$')


def documented_keys(config_dir: Path, name: str) -> dict[str, str]:
    """Top-level keys of ``<config_dir>/<name>.yaml`` and of the primary configs its defaults
    list extends (e.g. test -> train), each with the comment above it or beside it; also the
    keys its defaults list fills from another config (``- _mlp@mlp``, the comment above)."""
    path = config_dir / f'{name}.yaml'
    keys: dict[str, str] = {}
    comment: list[str] = []
    in_defaults = False
    for line in path.read_text().splitlines():
        if line.startswith('#') or in_defaults and line.lstrip().startswith('#'):
            comment.append(line.lstrip().lstrip('#').strip())
            continue
        match = _KEY.match(line)
        entry = re.match(r'^\s+- (\w+)(?:@(\w+))?\s*$', line) if in_defaults else None
        if match:
            key, rest = match.groups()
            in_defaults = key == 'defaults'
            inline = rest.split(' #', 1)[1].strip() if ' #' in rest else ''
            if key not in ('defaults', 'hydra'):
                keys[key] = ' '.join(comment + ([inline] if inline else []))
            comment = []
        elif entry:
            parent, package = entry.groups()
            if package:
                keys[package] = ' '.join(comment)
            elif parent != '_self_' and (config_dir / f'{parent}.yaml').is_file():
                keys = {**documented_keys(config_dir, parent), **keys}
            comment = []
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


def _usage(tool: str) -> str:
    """The command line the tool's YAML header shows (``python tools/test.py checkpoint=PATH
    ...``)."""
    return next((line[line.index('python tools/'):] for line in
                 _header(config_files.CONFIG_DIR, tool).splitlines() if 'python tools/' in line),
                f'python tools/{tool}.py [overrides]')


def missing_values(tool: str, keys: list[str]) -> str:
    """The error for required keys (``???`` in the tool's YAML) the command line left unset:
    what each is, from its comment, and the usage line."""
    docs = documented_keys(config_files.CONFIG_DIR, tool)
    one = len(keys) == 1
    what = '; '.join(f'{key}= {docs[key]}' if docs.get(key) else f'{key}=' for key in keys)
    return (f'{" and ".join(keys)} {"is" if one else "are"} not set, and tools/{tool}.py needs '
            f'{"it" if one else "them"}: {what}. Give {"it" if one else "them"} on the command '
            f'line: {_usage(tool)}')


# Hydra's own flags (its argument parser's), left to Hydra; any other --flag is an error here
HYDRA_FLAGS = ('--help', '--hydra-help', '--version', '--cfg', '--resolve', '--package', '--run',
               '--multirun', '--shell-completion', '--config-path', '--config-name',
               '--config-dir', '--experimental-rerun', '--info')


def _schema_keys(tool: str) -> dict:
    """Every key of the tool's schema (``schedule.max_iters``) -> its declared type."""
    from domino_seg.schema import SCHEMAS, declared_keys
    return declared_keys(SCHEMAS[tool])


def _open_keys(tool: str, name: str) -> list[str]:
    """The keys named ``name`` in the optimizer dicts of the tool's default config (the open
    dicts a user sets, e.g. ``model.optimizer.lr``; the schema does not list their keys)."""
    from omegaconf import OmegaConf

    cfg = config_files.compose_unresolved([], tool)
    return [f'{group}.{name}' for group in ('model.optimizer', 'model.paramwise_cfg')
            if OmegaConf.is_dict(OmegaConf.select(cfg, group)) and
            name in OmegaConf.select(cfg, group)]


def _flag_overrides(name: str, value, tool: str) -> list[str]:
    """The overrides a ``--name [value]`` flag may have meant: a group option, the key of that
    name (``seed``, ``schedule.max_iters``), the keys it ends (``max_iters``), else the keys
    closest to it."""
    import difflib

    keys = _schema_keys(tool)
    name = name.replace('-', '_')
    if (config_files.CONFIG_DIR / name).is_dir() and any(k.startswith(name + '.') for k in keys):
        return [f'{name}={value if value is not None else "<option>"}']  # a group: domino=head
    leaves = {}
    for key in keys:
        leaves.setdefault(key.rsplit('.', 1)[-1], []).append(key)
    found = [name] if name in keys else leaves.get(name) or _open_keys(tool, name) or \
        difflib.get_close_matches(name, list(keys), n=2) or \
        [k for leaf in difflib.get_close_matches(name, list(leaves), n=1) for k in leaves[leaf]]
    return [f'{key}=' + (str(value) if value is not None else 'true'
                         if keys[key] is bool else '<value>')
            for key in found]


def flag_error(argv: list[str], tool: str) -> str | None:
    """The error for ``--key value`` / ``--key=value`` flags on a command line (the tools take
    ``key=value`` overrides; argparse would only call them unrecognized): each with the
    overrides it may have meant, and the corrected command line. None without such flags."""
    problems, corrected, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg[2:].partition('=')
        i += 1
        if not arg.startswith('--') or not name or \
                any(flag.startswith(f'--{name}') for flag in HYDRA_FLAGS):  # argparse abbreviates
            corrected.append(arg)
            continue
        if not eq:
            value = argv[i] if i < len(argv) and not argv[i].startswith('-') and \
                '=' not in argv[i] else None
            i += value is not None
        given = arg if eq or value is None else f'{arg} {value}'
        meant = _flag_overrides(name, value, tool)
        corrected += meant[:1] or [given]
        problems.append(f'{given}: ' + (f'did you mean {" or ".join(meant)}?' if meant else
                                        'no key of this tool has that name.'))
    if not problems:
        return None
    unknown = len(problems) - sum('did you mean' in p for p in problems)
    return (f'{" ".join(problems)} The tools take key=value overrides, not --flags (only '
            'Hydra\'s own, e.g. --help, --cfg job, --multirun)'
            + ('' if unknown else f': python tools/{tool}.py {" ".join(corrected)}') +
            f'. python tools/{tool}.py --help lists the keys.')


def _group_keys(keys, choices: dict, root: DictConfig) -> list[str]:
    """``key=default`` lines for the group ``keys`` (``schedule.max_iters``) the composed
    ``root`` has, each group key's comment (in the chosen option's YAML) once."""
    from omegaconf import OmegaConf

    configs = config_files.CONFIG_DIR
    lines, shown = [], set()
    for key in keys:
        parent, _, leaf = key.rpartition('.')
        node = OmegaConf.select(root, parent, default=None)
        if not OmegaConf.is_dict(node) or leaf not in node:
            continue  # not in this config (e.g. domino.mlp without Domino layers)
        value = OmegaConf.to_container(node)[leaf] if OmegaConf.is_interpolation(node, leaf) \
            else _value(node[leaf])  # (an interpolation as written: ${...})
        lines.append(f'  {key}={value}')
        group, field = key.split('.')[:2]
        option = choices.get(group)
        if option and (group, field) not in shown and \
                (configs / group / f'{option}.yaml').is_file():
            shown.add((group, field))
            doc = documented_keys(configs / group, option).get(field, '')
            lines += textwrap.wrap(doc, 90, initial_indent=' ' * 6, subsequent_indent=' ' * 6)
    return lines


# folders of configs/ whose files are read by path, not chosen as group options: prompt banks
NOT_GROUPS = ('domain/prompts',)


def help_text(tool: str, hidden=(), common=(), *, _root_: DictConfig) -> str:
    """The help of ``tools/<tool>.py``: its usage, the groups with a choice to make (two or
    more options not starting with ``_``), its top-level keys with their defaults and the group
    keys users set most (``common``, e.g. ``schedule.max_iters``)."""
    from omegaconf import OmegaConf

    configs = config_files.CONFIG_DIR
    choices = dict(OmegaConf.select(_root_, 'hydra.runtime.choices', default={}) or {})
    groups = [g for g in choices if not g.startswith('hydra')]
    if 'model' in groups:  # experiments (+exp=NAME) apply to the tools that build a model
        groups.append('exp')
    lines = [_header(configs, tool), '']
    groups += [f'{g}/{sub.name}' for g in list(groups) if (configs / g).is_dir()
               for sub in sorted((configs / g).iterdir())
               if sub.is_dir() and f'{g}/{sub.name}' not in NOT_GROUPS]
    shown = [g for g in sorted(set(groups)) if len(_options(configs, g)) > 1]
    if shown:
        lines.append('== Config groups (group=option; +exp=NAME for an experiment) ==')
        for group in shown:
            current = choices.get(group)
            lines += textwrap.wrap(', '.join(f'{o} (default)' if o == current else o
                                             for o in _options(configs, group)), 90,
                                   initial_indent=f'  {group}: ', subsequent_indent=' ' * 6)
        lines.append('')
    lines.append('== Keys (key=value) ==')
    for key, doc in documented_keys(configs, tool).items():
        if key in hidden or key not in _root_.keys():
            continue
        default = '??? (required)' if OmegaConf.is_missing(_root_, key) else '(computed)' \
            if OmegaConf.is_interpolation(_root_, key) else _value(_root_[key])
        lines.append(f'  {key}={default}')
        lines += textwrap.wrap(doc, 90, initial_indent=' ' * 6, subsequent_indent=' ' * 6)
    group_keys = _group_keys(common, choices, _root_)
    if group_keys:
        lines += ['', '== Keys inside the groups set most often (group.key=value) ==',
                  *group_keys]
    if shown:
        lines += ['', 'Keys inside a group are overridden the same way (e.g. '
                  'schedule.max_iters=500, data.crop_size=[512,1024]).']
    lines.append(f'The composed config: python tools/{tool}.py [overrides] --cfg job')
    return '\n'.join(lines) + '\n'
