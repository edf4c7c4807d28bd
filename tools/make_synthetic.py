"""Generate the built-in synthetic weather benchmark (Cityscapes + ACDC layouts).

    python tools/make_synthetic.py out=data/synthetic num_train=300 num_val=40 height=128 width=256
"""
import hydra
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.apis.make_synthetic import make
from domino_seg.apis.run import checked, run_cli, run_hydra

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


@hydra.main(config_path='../configs', config_name='make_synthetic', version_base='1.3')
def main(cfg: DictConfig) -> None:
    run_cli(lambda: make(checked(cfg)))


if __name__ == '__main__':
    run_hydra(main)
