"""Precompute the domain embeddings' CLIP features of every image the experiment reads:
python tools/embed_domains.py [the same overrides as training], e.g. domain=zero_shot."""
import json

import hydra
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.data.builder import check_data, ensure_synthetic
from domino_seg.domain import builder as domain_builder
from domino_seg.domain.precompute import precompute_embeddings
from domino_seg.engine.run import checked, run_cli, run_hydra

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


def embed(cfg: DictConfig) -> dict:
    embedder = domain_builder.precompute_cfg(cfg.domain)
    ensure_synthetic(cfg.data)
    check_data(cfg.data, train=True)
    mm = domino_seg.to_mmengine(cfg)
    datasets = [*mm.train_dataloader.dataset.datasets, *mm.test_dataloader.dataset.datasets]
    stats = precompute_embeddings([d.to_dict() for d in datasets], embedder, progress=True,
                                  batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                  device=cfg.device)
    print(json.dumps(stats, indent=2))
    print(f'cache: {embedder["cache_dir"]} ({stats["computed"]} computed, {stats["hits"]} '
          f'already cached; {stats["images_per_s"]:.1f} images/s on {stats["device"]})')
    return stats


@hydra.main(config_path='../configs', config_name='embed_domains', version_base='1.3')
def main(cfg: DictConfig) -> None:
    run_cli(lambda: embed(checked(cfg)))


if __name__ == '__main__':
    run_hydra(main)
