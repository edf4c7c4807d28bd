"""``tools/test.py ... visualize=N [compare_checkpoint=PATH]``: the checks before testing and the
grids of a finished test, drawn by :mod:`domino_seg.evaluation.visualize`.

The model a grid compares with (``compare_checkpoint``) is another run's: it is built from the
config.yaml that run recorded and its domain encoder's weights are checked, which is why this
part lives in the engine (it reads the config, domain and checkpoint layers) and the drawing
in evaluation.
"""
from __future__ import annotations

import os.path as osp

from omegaconf import DictConfig

from domino_seg.config import scores_labels, to_mmengine, with_recorded_model
from domino_seg.domain import builder as domain_builder
from domino_seg.engine.runner import load_weights, read_checkpoint
from domino_seg.errors import ConfigError
from domino_seg.evaluation.visualize import check_options, write_grids


def describe_model(cfg: DictConfig) -> str:
    """A grid column's name: ``domino=head, domain=text``."""
    text = f'domino={cfg.domino.scope}'
    return text + (f', domain={cfg.domain.mode}' if cfg.domain.mode != 'none' else '')


def _compare_cfg(cfg: DictConfig) -> DictConfig:
    """``cfg`` with the model groups of the run that wrote ``cfg.compare_checkpoint``."""
    return with_recorded_model(cfg, cfg.compare_checkpoint, 'compare_checkpoint')


def check(cfg: DictConfig) -> None:
    """Fail before testing on a bad ``visualize`` / ``compare_checkpoint``, including the
    compared run's config and domain encoder weights."""
    check_options(cfg.get('visualize'), cfg.get('compare_checkpoint'))
    if cfg.get('compare_checkpoint') is not None:
        domain_builder.check_weights(_compare_cfg(cfg).domain)


def _load_compare(cfg: DictConfig):
    from mmseg.registry import DATASETS, MODELS
    other = _compare_cfg(cfg)
    mm = to_mmengine(other)
    model = MODELS.build(mm.model)
    checkpoint = read_checkpoint(cfg.compare_checkpoint)
    try:
        load_weights(model, checkpoint, strict=True)
    except RuntimeError as err:
        raise ConfigError(f'compare_checkpoint={cfg.compare_checkpoint!r} does not fit the model '
                          f'its config.yaml describes: {err}') from None
    return describe_model(other), model, DATASETS.build(mm.test_dataloader.dataset)


def write_test_grids(cfg: DictConfig, runner) -> list[str]:
    """The grids of a finished ``tools/test.py`` run (its model and test dataset, and the
    ``compare_checkpoint`` model), written by the main process."""
    from mmengine.dist import is_main_process
    if not is_main_process():
        return []
    compare = _load_compare(cfg) if cfg.get('compare_checkpoint') else None
    paths = write_grids(runner.model, runner.test_dataloader.dataset,
                        osp.join(cfg.work_dir, 'visualizations'), cfg.visualize,
                        describe_model(cfg), scores_labels(cfg), compare)
    runner.logger.info(f'visualizations: {", ".join(paths)}')
    return paths
