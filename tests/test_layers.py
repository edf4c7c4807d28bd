"""Imports point down the layers: a module imports its own unit (a subpackage or a top-level
module of domino_seg) and the units of lower layers, never a unit of its own layer or above.

Read from the source (ast), every import counted, also those inside functions; the tools/
scripts sit on top.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# top to bottom
LAYERS = (
    ('tools',),          # the entry points
    ('domino_seg',),     # the package itself: imports every part to register it
    ('engine',),
    ('config',),
    ('models', 'evaluation', 'data', 'domain'),
    ('compat', 'weights'),
    ('conditions', 'io', 'console'),
    ('errors',),
)
# modules that belong to another module's unit
UNIT_OF = {'tool_help': 'config',  # the tools' --help texts, a resolver config.py registers
           'schema': 'config',  # the configs' typed keys, checked at composition
           'presets': 'config',  # the exp/ presets written from one file per protocol
           'inference': 'engine'}  # the Segmenter API: a checkpoint, as the tools run it
LAYER = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}

# (file, imported module): imports that still point up, each until its fix lands (none)
KNOWN_EXCEPTIONS: set = set()


def unit_of(module: str) -> str:
    """``domino_seg.models.backbones.clip`` -> ``models``; ``domino_seg`` -> ``domino_seg``;
    ``tools.train`` -> ``tools``."""
    parts = module.split('.')
    if parts[0] != 'domino_seg':
        return parts[0]
    if len(parts) == 1:
        return 'domino_seg'
    return UNIT_OF.get(parts[1], parts[1])


def imported_modules(path: Path, module: str):
    """(line, module) for every import of a domino_seg module in ``path``."""
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(parent + ([node.module] if node.module else []))
            # `from domino_seg import compat` and `from . import backbones` import submodules
            targets = [f'{base}.{alias.name}' for alias in node.names] \
                if base == 'domino_seg' or not node.module else [base]
        else:
            continue
        for target in targets:
            if target.split('.')[0] == 'domino_seg':
                yield node.lineno, target


def sources():
    for path in sorted((ROOT / 'domino_seg').rglob('*.py')):
        parts = path.relative_to(ROOT).with_suffix('').parts
        yield path, '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
    for path in sorted((ROOT / 'tools').glob('*.py')):
        yield path, f'tools.{path.stem}'


def upward_imports() -> dict:
    """(file, imported module) -> the message, for each import of a unit in the same or a
    higher layer."""
    found = {}
    for path, module in sources():
        unit = unit_of(module)
        for line, target in imported_modules(path, module):
            other = unit_of(target)
            if other == unit or LAYER[other] > LAYER[unit]:
                continue
            how = 'a sibling' if LAYER[other] == LAYER[unit] else 'a higher layer'
            rel = path.relative_to(ROOT).as_posix()
            found[(rel, target)] = f'{rel}:{line}: {unit} imports {target} ({how}: {other})'
    return found


def test_every_unit_has_a_layer():
    units = {unit_of(module) for _, module in sources()}
    assert not units - set(LAYER), f'add {sorted(units - set(LAYER))} to LAYERS'


def test_imports_point_down():
    found = upward_imports()
    unexpected = [message for key, message in sorted(found.items())
                  if not any(key[0] == file and (key[1] + '.').startswith(target + '.')
                             for file, target in KNOWN_EXCEPTIONS)]
    assert not unexpected, '\n'.join(unexpected)


def test_known_exceptions_are_still_needed():
    found = upward_imports()
    stale = [entry for entry in sorted(KNOWN_EXCEPTIONS)
             if not any(key[0] == entry[0] and (key[1] + '.').startswith(entry[1] + '.')
                        for key in found)]
    assert not stale, f'fixed, remove from KNOWN_EXCEPTIONS: {stale}'
