"""Under mmcv-lite, importing domino_seg changes nothing observable in mmcv.ops and mmseg
beyond making ``import mmcv.ops`` work: ops that need no compiled extension are there as in
full mmcv, missing ones behave as upstream's guarded imports and feature checks expect (absent,
also from the registry), importing one fails with an ImportError naming the fix, and a
domino-seg model config naming one is a ConfigError naming it."""
import mmcv.ops
import pytest
import torch
from mmengine.utils.dl_utils import mmcv_full_available

pytestmark = pytest.mark.skipif(mmcv_full_available(), reason='full mmcv: no stub installed')
FIX = 'install full mmcv instead of mmcv-lite'


def test_missing_ops_are_absent_attributes():
    assert not hasattr(mmcv.ops, 'nms')
    assert getattr(mmcv.ops, 'PSAMask', None) is None
    with pytest.raises(AttributeError, match=rf'mmcv.ops.DeformConv2dPack needs the compiled '
                                             rf'mmcv extension .*{FIX}') as err:
        mmcv.ops.DeformConv2dPack  # noqa: B018
    assert err.value.name == 'DeformConv2dPack'
    with pytest.raises(AttributeError, match="^module 'mmcv.ops' has no attribute 'nope'$"):
        mmcv.ops.nope  # noqa: B018


def test_importing_a_missing_op_raises_what_guarded_imports_catch():
    try:
        from mmcv.ops import PSAMask
    except ModuleNotFoundError as err:  # mmseg's guard (psa_head, cc_head, point_head)
        assert err.name == 'mmcv._ext' and FIX in str(err)
        PSAMask = None
    assert PSAMask is None
    with pytest.raises(ModuleNotFoundError, match='mmcv.ops.nms needs the compiled'):
        import mmcv.ops.nms  # noqa: F401


def test_ops_without_compiled_code_are_the_real_ones():
    from mmcv.ops.cc_attention import CrissCrossAttention
    from mmcv.ops.point_sample import point_sample
    assert mmcv.ops.CrissCrossAttention is CrissCrossAttention
    assert mmcv.ops.point_sample is point_sample


def test_cchead_builds_and_runs_as_with_full_mmcv():
    from mmseg.models.decode_heads import CCHead
    head = CCHead(in_channels=16, channels=8, num_classes=19)
    assert len(head.convs) == 2 and isinstance(head.cca, mmcv.ops.CrissCrossAttention)
    assert head([torch.randn(1, 16, 9, 9)]).shape == (1, 19, 9, 9)


def test_psahead_keeps_mmsegs_own_fallback():
    from mmseg.models.decode_heads import PSAHead
    with pytest.raises(RuntimeError, match='Please install mmcv-full for PSAMask ops'):
        PSAHead(in_channels=4, channels=2, num_classes=19, mask_size=(13, 13))


@pytest.mark.parametrize('layer', ['DCN', 'DCNv2', 'MMSyncBN', 'SAC', 'carafe'])
def test_compiled_layers_are_absent_from_the_registry_as_under_mmcv_lite(layer):
    from mmseg.registry import MODELS
    assert layer not in MODELS and MODELS.get(layer) is None


@pytest.mark.parametrize('layer,part', [
    ('DCN', dict(dcn=dict(type='DCN', deform_groups=1),
                 stage_with_dcn=(False, True, False, False))),
    ('DCNv2', dict(dcn=dict(type='DCNv2', deform_groups=1),
                   stage_with_dcn=(False, True, False, False))),
    ('MMSyncBN', dict(norm_cfg=dict(type='MMSyncBN')))])
def test_a_model_config_naming_a_compiled_layer_is_a_config_error_naming_the_fix(layer, part):
    """(mmengine would say "DCN is not in the registry", mmcv "Cannot find None".)"""
    from omegaconf import OmegaConf

    from domino_seg.errors import ConfigError
    from domino_seg.models.builder import segmentor_cfg
    model = OmegaConf.create(dict(segmentor=dict(
        type='EncoderDecoder', backbone=dict(type='ResNetV1c', depth=50, **part))))
    with pytest.raises(ConfigError, match=rf"^model.segmentor: The layer type '{layer}' "
                                          rf'\(mmcv.ops.\w+\) needs the compiled mmcv extension '
                                          rf'.*{FIX}'):
        segmentor_cfg(model, OmegaConf.create(dict(scope='none')), None,
                      load_pretrained=False)


def test_focal_loss_runs_on_cpu_and_names_the_fix_for_the_compiled_path():
    from mmseg.models.losses import FocalLoss
    target = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 4, 4)), 3).permute(0, 3, 1, 2)
    loss = FocalLoss()(torch.randn(2, 3, 4, 4), target.float())
    assert torch.isfinite(loss)
    with pytest.raises(ImportError, match=f'mmcv.ops.sigmoid_focal_loss needs .*{FIX}'):
        mmcv.ops.sigmoid_focal_loss(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))
