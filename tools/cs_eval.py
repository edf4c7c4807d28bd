"""cityscapesscripts' pixel-level evaluation (``csEvalPixelLevelSemanticLabeling``) with
domino-seg's compatibility fixes; the command itself crashes on numpy >= 2.4, which removed
``np.in1d`` (see ``domino_seg/compat.py``). Same arguments and environment variables, e.g. for
an ``export=cityscapes`` of the Cityscapes val split:

    CITYSCAPES_DATASET=<cityscapes root> CITYSCAPES_RESULTS=<work_dir>/export/cityscapes \\
        python tools/cs_eval.py
"""
from domino_seg import compat  # noqa: F401  (np.in1d, before cityscapesscripts runs)
from domino_seg.engine.run import run_cli
from domino_seg.errors import DominoSegError


def main() -> None:
    try:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
    except ImportError as err:
        raise DominoSegError(f'cityscapesscripts cannot be imported ({err}): install it with '
                             'pip install cityscapesscripts (or pip install -e ".[dev]").') from err
    cs_eval.main()


if __name__ == '__main__':
    run_cli(main)
