"""Evaluate a checkpoint on every condition: python tools/test.py checkpoint=PATH [overrides]."""
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.apis.run import checked, run_cli, run_hydra, test, with_checkpoint_model

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


@hydra.main(config_path='../configs', config_name='test', version_base='1.3')
def main(cfg: DictConfig) -> None:
    cfg.work_dir = HydraConfig.get().runtime.output_dir
    # the model settings come with the checkpoint (config.yaml beside it) unless given here
    run_cli(lambda: test(with_checkpoint_model(checked(cfg),
                                               HydraConfig.get().overrides.task)))


if __name__ == '__main__':
    run_hydra(main, 'test')
