"""A few of mmseg's and mmengine's own behaviours, run as a plain script: ``python
tests/mmseg_checks.py plain|domino OUT_DIR`` writes their outcomes to OUT_DIR/outcomes.json.

``plain`` installs only the ``mmcv.ops`` stub from domino_seg/compat.py (loaded by path, not
as the package), without which ``import mmseg.models`` fails under mmcv-lite; ``domino``
imports domino_seg. tests/test_import_side_effects.py compares the two.
"""
import importlib.util
import json
import logging
import os
import pickle
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def outcome(check):
    try:
        return ['ok', check()]
    except BaseException as err:  # noqa: B036  (the outcome is the point)
        return ['error', [c.__name__ for c in type(err).__mro__], str(err).split('\n')[0]]


def tiny_model_cfg():
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=4,
                      out_indices=(3,)),
        decode_head=dict(type='FCNHead', in_channels=32, in_index=0, channels=4, num_convs=1,
                         num_classes=3, loss_decode=dict(type='CrossEntropyLoss')),
        test_cfg=dict(mode='whole'))


def main(mode: str, out: Path) -> dict:
    filters_before = list(warnings.filters)
    root = logging.getLogger()
    root_filters_before = list(root.filters)
    if mode == 'domino':
        import domino_seg  # noqa: F401
    else:
        spec = importlib.util.spec_from_file_location('compat_alone',
                                                      ROOT / 'domino_seg' / 'compat.py')
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        compat._install_mmcv_ops_stub()
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    result = {}
    # warning and log filters (the imports of both modes' modules may add their own: compared)
    result['filters_added'] = [repr(f) for f in warnings.filters if f not in filters_before]
    result['root_filters_added'] = [type(f).__name__ for f in root.filters
                                    if f not in root_filters_before]
    # registry lookups of upstream names
    names = ['Conv2d', 'BN', 'SyncBN', 'ResNetV1c', 'EncoderDecoder', 'FCNHead', 'CCHead',
             'CrossEntropyLoss', 'FocalLoss', 'CrissCrossAttention', 'DCN', 'DCNv2', 'DCNv3',
             'MMSyncBN', 'SAC', 'carafe', 'DeformConv2dPack', 'ModulatedDeformConv2dPack']
    result['registry'] = {n: outcome(lambda n=n: [n in MODELS, getattr(MODELS.get(n),
                                                                       '__qualname__', None)])
                          for n in names}
    # a model build, its output, and a build naming a compiled layer
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg())
    model.init_weights()
    model.eval()
    with torch.no_grad():
        logits = model(torch.linspace(0, 1, 2 * 3 * 64 * 64).reshape(2, 3, 64, 64),
                       mode='tensor')
    result['logits'] = [list(logits.shape), float(logits.double().sum())]
    dcn = dict(tiny_model_cfg(), backbone=dict(  # (depth 50: ResNet's BasicBlock has no dcn)
        tiny_model_cfg()['backbone'], depth=50, dcn=dict(type='DCN', deform_groups=1),
        stage_with_dcn=(False, True, False, False)))
    result['build_dcn'] = outcome(lambda: MODELS.build(dcn) and 'built')
    # init_model / inference_model on a tiny config and checkpoint
    ckpt = out / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': ('a', 'b', 'c'),
                                          'palette': [[0, 0, 0], [1, 1, 1], [2, 2, 2]]}}}, ckpt)
    cfg = Config(dict(model=tiny_model_cfg(), default_scope='mmseg', test_pipeline=[
        dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]))
    cfg.dump(str(out / 'tiny.py'))
    image = (np.arange(40 * 48 * 3) % 251).astype(np.uint8).reshape(40, 48, 3)

    def infer():
        segmentor = init_model(str(out / 'tiny.py'), str(ckpt), device='cpu')
        sample = inference_model(segmentor, image)
        return [segmentor.dataset_meta['classes'], list(sample.pred_sem_seg.data.shape),
                float(sample.seg_logits.data.double().sum())]
    result['inference'] = outcome(infer)
    # checkpoint files load_checkpoint cannot read: what callers catch
    unreadable = {'empty': b'', 'text': b'hello', 'pickle': pickle.dumps({'a': 1}, protocol=2),
                  'truncated': ckpt.read_bytes()[:300]}
    result['load_errors'] = {}
    for name, content in unreadable.items():
        (out / f'{name}.pth').write_bytes(content)
        result['load_errors'][name] = outcome(
            lambda name=name: load_checkpoint(model, str(out / f'{name}.pth')) and 'loaded')
    # torchrun's launcher asking for nccl without CUDA
    os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                      MASTER_PORT='29533')
    from mmengine.dist import init_dist
    result['init_dist_nccl'] = outcome(lambda: init_dist('pytorch', backend='nccl'))
    result['dist_initialized'] = torch.distributed.is_initialized()
    # warnings mmseg emits and records upstream libraries log on the root logger
    with warnings.catch_warnings(record=True) as caught:
        from mmseg.models.builder import build_loss
        build_loss(dict(type='CrossEntropyLoss'))
    result['warnings'] = [str(w.message).split(',')[0] for w in caught]
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    root.addHandler(handler)
    logging.warning("No pretrained weights loaded for model 'x'. Model initialized randomly.")
    root.removeHandler(handler)
    result['root_records'] = records
    return result


if __name__ == '__main__':
    out = Path(sys.argv[2])
    (out / 'outcomes.json').write_text(json.dumps(main(sys.argv[1], out), indent=1))
