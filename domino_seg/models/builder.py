"""The one place that reads the ``model``, ``domino`` and ``finetune`` config groups."""
from __future__ import annotations

import logging
from typing import Optional

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from omegaconf import DictConfig, OmegaConf

from domino_seg.compat import check_compiled_layers
from domino_seg.errors import ConfigError

from .domino_norm import NORM_TYPES, DominoNorm
from .pretrained import resolve_weights

TRAIN_BACKBONE = ('all', 'norms', 'none')


def segmentor_cfg(model: DictConfig, domino: DictConfig, embed_dim: Optional[int],
                  finetune: Optional[DictConfig] = None, load_pretrained: bool = True) -> dict:
    """The mmseg segmentor dict: the model group's ``segmentor`` plus backbone weights (unless
    ``load_pretrained`` is false: a checkpoint will replace them), the parts of the backbone
    ``finetune`` freezes, MixStyle after the backbone's norms with ``domino.style`` and, unless
    ``domino.scope`` is ``none``, Domino layers conditioned on ``embed_dim``-d domain
    embeddings."""
    seg = OmegaConf.to_container(model.segmentor, resolve=True)
    if model.get('pretrained') and load_pretrained:
        seg['backbone']['init_cfg'] = dict(
            type='Pretrained', checkpoint=resolve_weights(str(model.pretrained), seg['backbone']))
    elif load_pretrained:
        _warn_if_random(model)
    train_backbone = finetune.train_backbone if finetune else 'all'
    if train_backbone not in TRAIN_BACKBONE:
        raise ConfigError(f'finetune.train_backbone={train_backbone!r}: choose one of '
                          f'{list(TRAIN_BACKBONE)}.')
    if train_backbone != 'all':
        seg['backbone'] = dict(type='PartlyFrozenBackbone', backbone=seg['backbone'],
                               train=train_backbone)
    domino = OmegaConf.to_container(domino, resolve=True)
    style = domino.pop('style', None)
    if style:  # domino=style: MixStyle after the backbone's norms (models/style.py)
        seg['backbone'] = dict(type='StyleMixedBackbone', backbone=seg['backbone'], **style)
    if domino['scope'] != 'none':
        if not embed_dim:
            raise ConfigError(
                f'domino={domino["scope"]} needs a domain embedding, but domain.mode is none. '
                'Choose one, e.g. domain=text or domain=zero_shot.')
        seg['type'] = 'DomainAwareEncoderDecoder'
        seg['domino'] = dict(domino, embed_dim=embed_dim)
    check_compiled_layers(seg, 'model.segmentor')
    return seg


def optim_wrapper_cfg(model: DictConfig, finetune: Optional[DictConfig] = None) -> dict:
    paramwise_cfg = OmegaConf.to_container(model.paramwise_cfg, resolve=True) \
        if model.get('paramwise_cfg') else {}
    if finetune is not None and finetune.layer_decay_rate is not None:
        paramwise_cfg['layer_decay_rate'] = float(finetune.layer_decay_rate)
    return dict(type='OptimWrapper', constructor='FinetuneOptimWrapperConstructor',
                optimizer=OmegaConf.to_container(model.optimizer, resolve=True),
                paramwise_cfg=paramwise_cfg)


@MODELS.register_module()
def PartlyFrozenBackbone(backbone: dict, train: str) -> nn.Module:  # noqa: N802 (a type name)
    """Build ``backbone`` with only the parameters ``train`` names trainable.

    ``'norms'``: the affine parameters of its norm layers (Domino layers, added later by the
    segmentor, always train); BatchNorm statistics keep updating. ``'none'``: nothing, and the
    backbone always runs in eval mode, so BatchNorm statistics, dropout and drop-path stay as
    pretrained. Frozen parameters get ``requires_grad=False`` before DDP wraps the model; the
    optimizer constructor leaves them out. Returns the backbone itself: keys do not change.
    """
    module = MODELS.build(backbone)
    for child in module.modules():
        keep = train == 'norms' and isinstance(child, NORM_TYPES)
        for param in child.parameters(recurse=False):
            param.requires_grad_(keep)
    if train == 'none':
        module.register_forward_pre_hook(_stay_in_eval)
    return module


def _stay_in_eval(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: undo the Runner's ``model.train()`` for a frozen backbone."""
    module.eval()


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class FinetuneOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (``custom_keys``, ``norm_decay_mult``, ... as usual),
    then: frozen parameters left out of the optimizer, and with
    ``paramwise_cfg['layer_decay_rate'] = r`` layer-wise learning-rate decay: a parameter of
    backbone layer ``i`` (``backbone.layer_id``: 0 = embedding, ``i`` = block ``i - 1``, up
    to ``L = backbone.num_layers``) gets its lr times ``r ** (L + 1 - i)``; the neck, heads and
    Domino layers keep theirs. (mmseg's ``LearningRateDecayOptimizerConstructor`` recognises
    only its BEiT/MAE/ConvNeXt by class name and ignores ``custom_keys``.)
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.layer_decay_rate = paramwise_cfg.pop('layer_decay_rate', None)
        # never empty: mmengine skips add_params (and puts frozen parameters in) when it is
        paramwise_cfg.setdefault('custom_keys', {})
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: list, module: nn.Module, prefix: str = '', **kwargs) -> None:
        super().add_params(params, module, prefix, **kwargs)  # recurses through add_params
        if prefix:
            return  # only the outermost call sees every group
        params[:] = [group for group in params if group['params'][0].requires_grad]
        if not params:
            raise ConfigError('no parameter to train: the finetune strategy froze them all.')
        if self.layer_decay_rate is not None:
            self._decay_layers(params, module)

    def _decay_layers(self, params: list, model: nn.Module) -> None:
        backbone = getattr(model, 'backbone', None)
        if not hasattr(backbone, 'layer_id'):
            raise ConfigError(
                'finetune=llrd (layer_decay_rate) needs a backbone that numbers its layers '
                f'(the CLIP and DINOv2 backbones do); {type(backbone).__name__} does not.')
        domino = {id(p) for m in backbone.modules() if isinstance(m, DominoNorm)
                  for p in m.mlp.parameters()}
        layer_of = {id(p): backbone.layer_id(name) for name, p in backbone.named_parameters()
                    if id(p) not in domino}
        top = backbone.num_layers + 1
        for group in params:
            layer = layer_of.get(id(group['params'][0]), top)
            group['lr'] = group.get('lr', self.base_lr) * self.layer_decay_rate ** (top - layer)


def _warn_if_random(model: DictConfig) -> None:
    """A foundation backbone (one of domino-seg's PretrainedBackbone: CLIP, DINOv2) trained
    from random weights is rarely meant: say so, as the tiny CLIP does."""
    from .backbones.base import PretrainedBackbone
    backbone = model.segmentor.backbone
    cls = MODELS.get(backbone.get('type', ''))
    if isinstance(cls, type) and issubclass(cls, PretrainedBackbone):
        print_log(f'model.pretrained is null: the {model.get("name", backbone.type)} backbone '
                  'starts from random weights, so this run fine-tunes no foundation model.',
                  logger='current', level=logging.WARNING)
