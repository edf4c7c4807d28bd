"""The commands and links in README.md and docs/ stay true as the code changes: every
``python tools/<tool>.py ...`` in a code block composes (its ``key=`` overrides are keys the
tool's config accepts), every tool's ``--help`` runs, every relative link resolves."""
import re
import shlex
from pathlib import Path

import pytest

from domino_seg import compose

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]
HYDRA_TOOLS = ('train', 'test', 'infer', 'deploy', 'embed_domains', 'make_synthetic')
COMMAND = re.compile(r'python tools/(\w+)\.py\b(.*)')
FENCE = re.compile(r'^\s*```')
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
PLACEHOLDER = re.compile(r'<[^<>]*>|\$\{?\w+\}?')
# a shell variable's value where a name is built from it (the loop of docs/results.md's recipe)
VARIABLES = {'$c': 'fog'}


def _code_lines(path: Path):
    """``(line number, text)`` of the lines inside fenced code blocks, continuations joined."""
    inside, pending, start = False, '', 0
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith('\\'):
            pending += line.rstrip()[:-1] + ' '
            continue
        yield start, pending + line
        pending = ''


def _value(placeholder: re.Match) -> str:
    """A word for ``<run>`` or ``$VAR`` (a string value to Hydra)."""
    return VARIABLES.get(placeholder.group(0), 'run')


def _commands():
    """``(where, tool, arguments)`` of every documented tool command (also in comment lines,
    as the results' recipes are written)."""
    found = []
    for path in DOCS:
        for number, line in _code_lines(path):
            match = COMMAND.search(line)
            if match:
                args = shlex.split(PLACEHOLDER.sub(_value, match.group(2)), comments=True)
                found.append((f'{path.relative_to(ROOT)}:{number}', match.group(1), args))
    return found


COMMANDS = _commands()


def _overrides(args: list) -> list:
    """The Hydra overrides of one documented command: placeholders already words,
    ``[...]`` (an optional override) unwrapped, a sweep (``-m``) reduced to its first
    values, Hydra's own ``hydra.*`` and launcher keys left to Hydra."""
    sweep = '-m' in args or '--multirun' in args
    overrides = []
    for arg in args:
        if arg.startswith('[') and arg.endswith(']') and '=' in arg and arg.index('=') > 1:
            arg = arg[1:-1]
        if arg.startswith('-') or '=' not in arg:
            continue
        key, value = arg.split('=', 1)
        if key.startswith('hydra') or key.startswith('hydra/'):
            continue
        if sweep and not value.startswith('['):
            value = value.split(',')[0]
        overrides.append(f'{key}={value}')
    return overrides


def test_docs_show_every_tool():
    assert {tool for _, tool, _ in COMMANDS} == {*HYDRA_TOOLS, 'compare'}


@pytest.mark.parametrize('where,tool,args',
                         [c for c in COMMANDS if c[1] in HYDRA_TOOLS],
                         ids=[c[0] for c in COMMANDS if c[1] in HYDRA_TOOLS])
def test_documented_overrides_compose(where, tool, args):
    overrides = _overrides(args)
    try:
        compose(overrides, tool)
    except Exception as error:  # noqa: BLE001 - the message names the key that broke
        pytest.fail(f'{where}: python tools/{tool}.py {" ".join(overrides)}\n{error}')


@pytest.mark.slow
@pytest.mark.parametrize('tool', [*HYDRA_TOOLS, 'compare'])
def test_documented_tool_help_runs_and_lists_its_options(tool, tool_main):
    result = tool_main(f'{tool}.py', ['--help'], ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    if tool == 'compare':  # argparse: every documented flag is one it lists
        for where, _, args in (c for c in COMMANDS if c[1] == 'compare'):
            for flag in (a for a in args if a.startswith('--')):
                assert flag in result.stdout, f'{where}: {flag} not in compare.py --help'


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(path: Path) -> set:
    return {_slug(line.lstrip('#')) for line in path.read_text(encoding='utf-8').splitlines()
            if re.match(r'#{1,6} ', line)}


def _links():
    for path in PAGES:
        for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            for target in LINK.findall(line):
                if not re.match(r'[a-z]+:', target):
                    yield f'{path.relative_to(ROOT)}:{number}', path, target


@pytest.mark.parametrize('where,page,target', list(_links()),
                         ids=[f'{w}:{t}' for w, _, t in _links()])
def test_relative_link_points_to_an_existing_file(where, page, target):
    file, _, anchor = target.partition('#')
    resolved = (page.parent / file).resolve() if file else page
    assert resolved.exists(), f'{where}: {target} does not exist'
    if anchor and resolved.suffix == '.md':
        assert anchor in _anchors(resolved), f'{where}: no heading #{anchor} in {file or page.name}'



def test_the_cpu_requirements_install_the_project_with_pyprojects_torch_ranges():
    """requirements-cpu.txt (the README's CPU install) pins nothing of its own: its torch and
    torchvision ranges are pyproject.toml's, it adds the CPU index (never replaces PyPI) and
    installs the project as ``pip install -e ".[dev]"`` does."""
    declared = {}
    for line in (ROOT / 'pyproject.toml').read_text(encoding='utf-8').splitlines():
        match = re.match(r'\s*"(torch|torchvision)(>=[^"]+)",', line)
        if match:
            declared[match.group(1)] = match.group(2)
    lines = [line.strip() for line in (ROOT / 'requirements-cpu.txt').read_text(
        encoding='utf-8').splitlines() if line.strip() and not line.startswith('#')]
    assert lines == ['--extra-index-url https://download.pytorch.org/whl/cpu',
                     f"torch{declared['torch']}", f"torchvision{declared['torchvision']}",
                     '-e .[dev]']
    quick_start = (ROOT / 'README.md').read_text(encoding='utf-8').split('## Quick start')[1]
    first_command = quick_start.split('```bash\n', 1)[1].splitlines()[0]
    assert first_command.startswith('pip install -r requirements-cpu.txt')
