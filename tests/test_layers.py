"""Imports point down the layers: a module imports its own unit (a subpackage or a top-level
module of domino_seg) and the units of lower layers, never a unit of its own layer or above;
no two modules import each other, even through others; the configs' resolvers are registered
with the config.

Read from the source (ast), every import counted, also those inside functions; the tools/
scripts sit on top.
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# top to bottom
LAYERS = (
    ('tools',),          # the entry points
    ('domino_seg',),     # the package itself: imports every part to register it
    ('apis',),           # what tools and users call: train, test, infer, deploy, compare, ...
    ('engine',),
    ('config',),
    ('models', 'evaluation', 'data', 'domain'),
    ('compat', 'weights'),
    ('conditions', 'io', 'console', 'run_names', 'registry'),
    ('errors',),
)
# modules that belong to another module's unit
UNIT_OF = {'tool_help': 'config',  # the tools' --help texts, a resolver config.py registers
           'schema': 'config',  # the configs' typed keys, checked at composition
           'config_files': 'config',  # the configs folder and Hydra's raw composition
           'presets': 'config'}  # the exp/ presets written from one file per protocol
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


def import_cycles() -> list[list[str]]:
    """The sets of modules that import each other, directly or through others (the strongly
    connected components of the import graph, Tarjan), each sorted."""
    modules = {module: path for path, module in sources()}
    graph = {}
    for module, path in modules.items():
        graph[module] = set()
        for _, target in imported_modules(path, module):
            while target not in modules and '.' in target:  # a name in a module: the module
                target = target.rpartition('.')[0]
            if target in modules and target != module:
                graph[module].add(target)
    index, low, stack, cycles = {}, {}, [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(component) > 1:
                cycles.append(sorted(component))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles():
    assert not import_cycles()


def test_the_configs_resolvers_are_registered_with_the_config():
    """Every ``${name:...}`` resolver of configs/ is registered by a module of the config unit
    (composing a config needs no run machinery above it)."""
    used = {name for path in (ROOT / 'configs').rglob('*.yaml')
            for name in re.findall(r'\$\{(\w+):', path.read_text(encoding='utf-8'))}
    registered = {}
    for path, module in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Call) and getattr(node.func, 'attr', None) == \
                    'register_new_resolver' and isinstance(node.args[0], ast.Constant):
                registered[node.args[0].value] = unit_of(module)
    assert used and used <= set(registered), f'unregistered: {sorted(used - set(registered))}'
    assert {name: registered[name] for name in used} == dict.fromkeys(used, 'config')

