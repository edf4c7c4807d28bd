"""Train a segmentor: python tools/train.py [overrides], e.g. +exp=acdc_fog domino=head."""
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.apis.run import checked, run_cli, run_hydra, train

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


@hydra.main(config_path='../configs', config_name='train', version_base='1.3')
def main(cfg: DictConfig) -> None:
    # multirun jobs each get Hydra's per-job folder as work dir
    cfg.work_dir = HydraConfig.get().runtime.output_dir
    run_cli(lambda: train(checked(cfg)))


if __name__ == '__main__':
    run_hydra(main, 'train')
