"""Precompute the domain embeddings' CLIP features of every image the experiment reads:
python tools/embed_domains.py [the same overrides as training], e.g. domain=zero_shot."""
import hydra
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.apis.embed_domains import embed
from domino_seg.apis.run import checked, run_cli, run_hydra

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


@hydra.main(config_path='../configs', config_name='embed_domains', version_base='1.3')
def main(cfg: DictConfig) -> None:
    run_cli(lambda: embed(checked(cfg)))


if __name__ == '__main__':
    run_hydra(main)
