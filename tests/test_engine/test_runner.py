"""DominoRunner.wrap_model: for multi-process runs BatchNorms become SyncBatchNorms without
losing timm's activations (EfficientNet's BatchNorm + ReLU6 layers), with Domino or without."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS
from mmseg.structures import SegDataSample
from timm.layers import BatchNormAct2d, SyncBatchNormAct

import domino_seg
from domino_seg.engine.runner import DominoRunner


@MODEL_WRAPPERS.register_module(name='WrapperForTests', force=True)
class WrapperForTests(torch.nn.Module):
    """Stands in for DistributedDataParallel: a test has no process group."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def a_distributed_runner(sync_bn):
    runner = DominoRunner.__new__(DominoRunner)  # (only what wrap_model reads)
    runner._distributed, runner.cfg = True, Config(dict(sync_bn=sync_bn))
    return runner


def forward(model, images, embeddings):
    samples = [SegDataSample(metainfo=dict(domain_embedding=e)) for e in embeddings]
    torch.manual_seed(0)  # the same dropout on both sides
    return model(images, samples, mode='tensor')


@pytest.mark.parametrize('domino', ['none', 'full'])
def test_sync_batchnorm_keeps_timm_activations(domino):
    """EfficientNet's BatchNormAct2d become timm's SyncBatchNormAct (torch's converter, which
    mmengine uses, would make plain SyncBatchNorms and drop their ReLU6); on one process they
    normalise as before, so the converted model computes what it did, in train and eval mode."""
    cfg = domino_seg.compose([f'domino={domino}', 'domain=text', 'model.pretrained=null'])
    torch.manual_seed(0)
    model = domino_seg.build_segmentor(cfg)
    before = copy.deepcopy(model)
    runner = a_distributed_runner('torch')
    converted = runner.wrap_model(dict(type='WrapperForTests'), model).module
    assert runner.cfg.sync_bn == 'torch'  # (left as configured)
    types = {type(m) for m in converted.modules()}
    assert SyncBatchNormAct in types and BatchNormAct2d not in types
    images = torch.randn(2, 3, 64, 128)
    embeddings = torch.randn(2, getattr(model, 'domain_embed_dim', 1))
    for train in (True, False):
        converted.train(train), before.train(train)
        torch.testing.assert_close(forward(converted, images, embeddings),
                                   forward(before, images, embeddings), rtol=1e-5, atol=1e-5)


def test_other_sync_bn_settings_are_mmengines():
    """Without sync_bn='torch' (a single process, or no sync_bn) nothing is converted here."""
    runner = a_distributed_runner(None)
    model = torch.nn.Sequential(BatchNormAct2d(4))
    assert type(runner.wrap_model(dict(type='WrapperForTests'), model).module[0]) is BatchNormAct2d
