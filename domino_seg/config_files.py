"""Where the YAML configs are and Hydra's composition of them, unresolved: what ``config.py``
(which checks and translates the result) and ``tool_help.py`` (each tool's --help, errors for
a wrong command line) both read, so neither imports the other."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from domino_seg.errors import ConfigError

CONFIG_DIR = Path(os.environ.get('DOMINO_SEG_CONFIGS', Path(__file__).resolve().parents[1] /
                                 'configs'))


def compose_unresolved(overrides: Sequence[str], config_name: str) -> DictConfig:
    """Hydra's composition, unresolved; inside a running tool, through that tool's Hydra."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    if not CONFIG_DIR.is_dir():
        raise ConfigError(f'config folder {CONFIG_DIR} not found; set DOMINO_SEG_CONFIGS to the '
                          "repository's configs/ folder.")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base='1.3'):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
