"""Segment your own images and videos with a trained checkpoint:
python tools/infer.py checkpoint=PATH input=<image | folder | glob | video> [out=DIR]
[condition=fog]."""
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.apis.infer import infer
from domino_seg.apis.run import checked, run_cli, run_hydra

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


@hydra.main(config_path='../configs', config_name='infer', version_base='1.3')
def main(cfg: DictConfig) -> None:
    # the model settings come with the checkpoint (config.yaml beside it) unless given here
    run_cli(lambda: infer(checked(cfg), HydraConfig.get().overrides.task))


if __name__ == '__main__':
    run_hydra(main)
