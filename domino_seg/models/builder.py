"""The one place that reads the ``model`` and ``domino`` config groups."""
from __future__ import annotations

import os.path as osp

from omegaconf import DictConfig, OmegaConf

from domino_seg.errors import ConfigError


def segmentor_cfg(model: DictConfig, domino: DictConfig, embed_dim: int | None) -> dict:
    """The mmseg segmentor dict: the model group's ``segmentor`` plus backbone weights and,
    unless ``domino.scope`` is ``none``, Domino layers conditioned on ``embed_dim``-d domain
    embeddings."""
    seg = OmegaConf.to_container(model.segmentor, resolve=True)
    if model.get('pretrained'):
        path = str(model.pretrained)
        if not osp.isfile(path):
            raise ConfigError(
                f'model.pretrained={path!r} is not a file. Download the backbone weights and '
                'set model.pretrained=/path/to/weights.pth, or model.pretrained=null to train '
                'from random initialisation.')
        seg['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=path)
    if domino.scope != 'none':
        if not embed_dim:
            raise ConfigError(
                f'domino={domino.scope} needs a domain embedding, but domain.mode is none. '
                'Choose one, e.g. domain=text or domain=zero_shot.')
        seg['type'] = 'DomainAwareEncoderDecoder'
        seg['domino'] = dict(OmegaConf.to_container(domino, resolve=True), embed_dim=embed_dim)
    return seg


def optim_wrapper_cfg(model: DictConfig) -> dict:
    return dict(type='OptimWrapper',
                optimizer=OmegaConf.to_container(model.optimizer, resolve=True),
                paramwise_cfg=OmegaConf.to_container(model.get('paramwise_cfg') or {},
                                                     resolve=True))
