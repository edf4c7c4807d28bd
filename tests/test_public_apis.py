"""domino_seg uses upstream libraries through their public APIs, except the pinned, commented
exceptions listed in docs/reliability.md (compatibility notes)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'domino_seg'
# private upstream names with no public route, each commented at its use
EXCEPTIONS = {
    '_ext',  # mmcv._ext, named in messages (compat)
    '_core', '_reconstruct',  # numpy._core.multiarray._reconstruct: the name pickles use
    '_BatchNorm',  # torch: the only base class mmengine's _BatchNormXd shares with BatchNorm2d
    '_log_env', '_infinite_indices',  # mmengine 0.10.7 (pinned) steps DominoRunner/sampler extend
    '_forward',  # mmseg's BaseSegmentor: abstract, the subclass contract
}


def _private_uses(tree: ast.AST) -> set:
    """Private names taken from other objects than ``self``/``cls``, and imported from
    modules outside domino_seg."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith('_') and \
                not node.attr.startswith('__') and \
                not (isinstance(node.value, ast.Name) and node.value.id in ('self', 'cls')):
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and \
                not (node.module or '').startswith('domino_seg'):
            found |= {a.name for a in node.names if a.name.startswith('_')}
    return found


def test_no_private_upstream_api_outside_the_listed_exceptions():
    used = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        for name in _private_uses(ast.parse(path.read_text(encoding='utf-8'))) - EXCEPTIONS:
            used.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    own = {'_last_checkpoint', '_unused'}  # (DominoRunner's, the backbones' base class's)
    assert {name: files for name, files in used.items() if name not in own} == {}
