"""What tools/embed_domains.py does: precompute the domain embeddings' CLIP features of every
image an experiment reads, into the embedding cache."""
import json

from omegaconf import DictConfig

from domino_seg.config import to_mmengine
from domino_seg.data.builder import check_data, ensure_synthetic
from domino_seg.domain import builder as domain_builder
from domino_seg.domain.precompute import precompute_embeddings


def embed(cfg: DictConfig) -> dict:
    """Fill the embedding cache with the features of the experiment's training and evaluated
    images (those already cached are kept); prints and returns the counts and the speed."""
    embedder = domain_builder.precompute_cfg(cfg.domain)
    ensure_synthetic(cfg.data)
    check_data(cfg.data, train=True)
    mm = to_mmengine(cfg)
    datasets = [*mm.train_dataloader.dataset.datasets, *mm.test_dataloader.dataset.datasets]
    stats = precompute_embeddings([d.to_dict() for d in datasets], embedder, progress=True,
                                  batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                                  device=cfg.device)
    print(json.dumps(stats, indent=2))
    print(f'cache: {embedder["cache_dir"]} ({stats["computed"]} computed, {stats["hits"]} '
          f'already cached; {stats["images_per_s"]:.1f} images/s on {stats["device"]})')
    return stats

