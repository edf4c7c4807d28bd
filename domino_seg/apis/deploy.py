"""What tools/deploy.py does: a trained checkpoint, folded for one domain, as a plain model.

``python tools/deploy.py checkpoint=PATH condition=fog format=pth|onnx [out=PATH]``: the model,
Domino and domain settings come from the ``config.yaml`` beside the checkpoint; the domain
embedding to fold for is a condition's (``condition=``, from the prompt bank), an image's
(``image=``, zero_shot/image modes) or a file's (``embedding=<file.npy>``). The Domino layers
are folded into the norms they wrap (:func:`domino_seg.models.fold.fold_domino`), the domain
encoder dropped, and the result written as a plain mmseg checkpoint (``format=pth``: state dict
plus ``meta['cfg']``, the plain model's config, also written beside it as ``<out>.py``) or an
ONNX graph (``format=onnx``). With ``verify=true`` (default) the tool checks, on a random image,
that the plain model computes what the Domino model computes for that embedding, and the ONNX
graph what PyTorch computes.
"""
from __future__ import annotations

import hashlib
import io
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from domino_seg.conditions import DOMAIN_OF_CONDITION
from domino_seg.domain.clip_generator import IMAGE_MODES, LABEL_MODES
from domino_seg.errors import CheckpointError, ConfigError, DominoSegError
from domino_seg.io import atomic_path, atomic_write_bytes, check_outputs, reported_write

FORMATS = ('pth', 'onnx')
# verification: |difference| allowed relative to the logits' scale
RTOL = 1e-4
ZERO_SHOT_CAVEAT = (
    'The plain model has one domain embedding built in, so it is no longer zero-shot: it '
    'computes what the Domino model computes for images whose embedding is this one. To stay '
    'zero-shot, the Domino model needs the CLIP image tower at inference (clip_tower=true '
    'exports it as ONNX: its outputs, the embedding and the condition probabilities, can pick '
    'among models folded for each condition).')
# how a failed write (a full disk, no permission) ends: the message of reported_write
WRITE_FIX = ('Free space or make the folder of out= writable (or choose another out=), and run '
             'the same command again.')


def deploy(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict:
    """Fold ``cfg.checkpoint`` for the domain ``cfg`` names and write it (see the module
    docstring); ``overrides`` are the command line's (groups given there are not taken from
    the checkpoint's config.yaml). Returns what was written and checked."""
    from domino_seg.apis.run import with_checkpoint_model
    from domino_seg.config import recorded_config, recorded_config_path
    from domino_seg.models.fold import fold_domino
    if cfg.format not in FORMATS:
        raise ConfigError(f'format={cfg.format!r}: choose pth (a plain mmseg checkpoint) or onnx.')
    if cfg.format == 'onnx' or cfg.clip_tower:
        from domino_seg.models.export import require
        require('onnx', 'format=onnx' if cfg.format == 'onnx' else 'clip_tower=true')
        if cfg.verify:
            require('onnxruntime', 'verify=true (checking the ONNX export; verify=false skips it)')
    checkpoint = str(cfg.checkpoint)
    if not osp.isfile(checkpoint):
        raise CheckpointError(f'checkpoint={checkpoint!r} is not a file; pass a .pth that '
                              'tools/train.py wrote (see its work dir).')
    recorded = recorded_config(checkpoint)
    cfg = with_checkpoint_model(cfg, overrides)
    scope, mode = cfg.domino.scope, cfg.domain.mode
    if cfg.clip_tower and mode not in IMAGE_MODES:
        raise ConfigError(f'clip_tower=true exports the CLIP image tower that computes the '
                          f'domain embedding of domain=zero_shot or image; this model '
                          f'(domain={mode}) has none to export.')
    img_scale = _img_scale(cfg, recorded)
    size = _size(cfg, img_scale)
    embedding, source, tag = _embedding(cfg)  # (before the weights load: errors come fast)
    out = _out_path(cfg, checkpoint, tag)
    inputs = [checkpoint, recorded_config_path(checkpoint)] + [
        str(cfg[key]) for key in ('embedding', 'image') if cfg.get(key) is not None]
    deployed = _deployed(out)
    check_outputs(_outputs(cfg, out), osp.dirname(osp.abspath(out)), inputs,
                  ours=lambda path: deployed)
    model = _domino_model(cfg, checkpoint)
    plain = fold_domino(model, embedding)
    plain_cfg, plain = _rebuilt(cfg, plain)
    report = dict(checkpoint=checkpoint, domino=scope, domain=mode, folded_for=source,
                  format=cfg.format, out=out, size=list(size))
    fold_info = dict(source_checkpoint=osp.abspath(checkpoint), domino=scope, domain=mode,
                     folded_for=source)
    if embedding is not None:
        fold_info['embedding_sha256'] = hashlib.sha256(
            np.ascontiguousarray(embedding, np.float32).tobytes()).hexdigest()
    if cfg.verify:
        report['fold_max_difference'] = _check_fold(model, plain, embedding, size)
    if cfg.format == 'pth':
        report['config'] = _write_pth(out, plain, plain_cfg, img_scale, fold_info)
    else:
        report.update(_write_onnx(out, plain, size, img_scale, fold_info, cfg.verify))
    if cfg.clip_tower:
        report.update(_write_clip_tower(cfg, out, cfg.verify))
    _print_report(report, scope, mode)
    return report


def _img_scale(cfg: DictConfig, recorded: DictConfig) -> list:
    """The run's evaluation scale ``data.img_scale`` ([w, h]): images are resized to fit it."""
    scale = OmegaConf.select(recorded, 'data.img_scale', default=None) or cfg.data.img_scale
    return [int(s) for s in scale]


def _size(cfg: DictConfig, img_scale: Sequence[int]) -> tuple:
    """[h, w] of the verification image and the ONNX trace: ``size``, else the run's
    evaluation scale."""
    size = cfg.get('size')
    if size is None:
        size = [img_scale[1], img_scale[0]]
    size = list(OmegaConf.to_object(size) if OmegaConf.is_config(size) else size)
    if len(size) != 2 or not all(type(s) is int and s >= 32 for s in size):
        raise ConfigError(f'size={size}: give [height,width], two integers >= 32 (pixels).')
    return tuple(size)


def _segmentor_cfg(cfg: DictConfig, domino: DictConfig) -> dict:
    from domino_seg.domain import builder as domain_builder
    from domino_seg.models import builder as model_builder
    embed_dim = domain_builder.embed_dim(cfg.domain) if domino.scope != 'none' else None
    # inference only: no pretrained backbone weights (the checkpoint holds them), nothing frozen
    return model_builder.segmentor_cfg(cfg.model, domino, embed_dim, None, load_pretrained=False)


def _build(seg: dict):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(seg)


def _domino_model(cfg: DictConfig, checkpoint: str):
    """The trained model, its weights loaded (all of them: nothing may be missing)."""
    import re

    from domino_seg.engine.runner import check_fits, read_checkpoint
    model = _build(_segmentor_cfg(cfg, cfg.domino))
    state_dict = read_checkpoint(checkpoint)
    state_dict = state_dict.get('state_dict', state_dict)
    state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    check_fits(model, state_dict, checkpoint)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _embedding(cfg: DictConfig) -> tuple[Optional[np.ndarray], str, str]:
    """(the domain embedding to fold for or None, what it is in words, a file-name tag)."""
    from domino_seg.domain import builder as domain_builder
    given = {key: cfg.get(key) for key in ('condition', 'embedding', 'image')
             if cfg.get(key) is not None}
    if cfg.domino.scope == 'none':
        if given:
            print(f'note: the model has no Domino layers (domino={cfg.domino.scope}), so '
                  f'there is nothing to fold: {", ".join(f"{k}=" for k in given)} ignored; '
                  'exporting it as it is.', flush=True)
        return None, 'nothing (no Domino layers)', 'plain'
    mode, embed_dim = cfg.domain.mode, domain_builder.embed_dim(cfg.domain)
    if len(given) != 1:
        raise ConfigError(
            (f'{", ".join(f"{k}=" for k in given)}: give only one; ' if given else '') +
            f'name the domain to fold this domino={cfg.domino.scope} model (domain={mode}) '
            'for: condition=<a condition of the prompt bank> (domain=text or zero_shot), '
            'image=<an image file> (domain=zero_shot or image) or embedding=<a .npy file of '
            f'{embed_dim} numbers>.')
    (key, value), = given.items()
    if key == 'embedding':
        return _embedding_file(str(value), embed_dim, mode), f'embedding={value}', \
            osp.splitext(osp.basename(str(value)))[0]
    if key == 'condition' and mode == 'image':
        raise ConfigError(
            'condition= folds a condition\'s text embedding, but this model (domain=image) was '
            'trained on CLIP image embeddings, which text embeddings are not (CLIP keeps the two '
            'apart): pass image=<a typical image of the domain> or embedding=<file.npy>.')
    if key == 'image' and mode in LABEL_MODES:
        raise ConfigError('image= needs a model trained with image embeddings (domain=zero_shot '
                          f'or image); this one (domain={mode}) reads condition embeddings: pass '
                          'condition=<condition>.')
    generator = _generator(cfg.domain)
    if key == 'condition':
        condition = str(value)
        label = DOMAIN_OF_CONDITION.get(condition, condition)
        if label not in generator.bank.prompts:
            aliases = ', '.join(f'{k} = {v}' for k, v in DOMAIN_OF_CONDITION.items())
            raise ConfigError(f'condition={condition!r} is not a condition of the prompt bank '
                              f'{generator.bank.source}: choose one of '
                              f'{", ".join(generator.conditions)} ({aliases}).')
        embedding = generator.embed_conditions([label])[0]
        source = f'condition={condition}' + (f' (the bank\'s {label!r})' if label != condition
                                             else '')
        if mode == 'zero_shot':  # the mix of the bank's embeddings, all weight on one
            source += (': its text embedding, the zero_shot embedding of an image CLIP puts '
                       f'in {label} with certainty')
        return embedding.numpy(), source, condition
    import mmcv
    path = str(value)
    try:
        image = mmcv.imread(path) if osp.isfile(path) else None
    except Exception:  # mmcv's decoders
        image = None
    if image is None:
        raise ConfigError(f'image={path!r} is not an image file.')
    embedding = generator.embed_images([image], channel_order='bgr')[0]
    return embedding.numpy(), f'image={path}', osp.splitext(osp.basename(path))[0]


def _generator(domain: DictConfig):
    from domino_seg.domain import builder as domain_builder
    from domino_seg.domain.clip_generator import DomainPromptGenerator
    domain_builder.check_domain(domain)
    return DomainPromptGenerator(**domain_builder.generator_cfg(domain))


def _embedding_file(path: str, embed_dim: int, mode: str) -> np.ndarray:
    """The vector of an ``embedding=`` .npy file, checked to be one this model's embeddings
    can be: ``embed_dim`` finite real numbers, of norm 1 (``text`` and ``image`` embeddings
    are normalised) or at most 1 (a ``zero_shot`` embedding mixes normalised ones), within
    UNIT_NORM_TOLERANCE. A vector further off is refused, not normalised: it is more likely
    another quantity (raw features, another encoder's) than a rounded embedding."""
    from domino_seg.domain.clip_generator import UNIT_NORM_TOLERANCE
    fix = (f'save one vector of the model\'s {embed_dim}-d domain embedding with '
           'np.save(path, embedding), e.g. what DomainPromptGenerator.embed_conditions or '
           'embed_images returns.')
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ConfigError(f'embedding={path!r} cannot be read as a .npy array ({err}); '
                          f'{fix}') from None
    if isinstance(array, np.lib.npyio.NpzFile):
        names = ', '.join(array.files)
        array.close()
        raise ConfigError(f'embedding={path!r} is a .npz archive (arrays {names}), not one '
                          f'array; {fix}')
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating) or
                                   np.issubdtype(array.dtype, np.integer)):
        raise ConfigError(f'embedding={path!r} holds {array.dtype} values, not real numbers; '
                          f'{fix}')
    if array.shape not in ((embed_dim, ), (1, embed_dim)) or not np.isfinite(array).all():
        raise ConfigError(f'embedding={path!r} holds an array of shape {array.shape}; this '
                          f'model needs {embed_dim} finite numbers (shape ({embed_dim},)).')
    vector = array.astype(np.float32).reshape(embed_dim)
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    if mode == 'zero_shot' and norm > 1 + UNIT_NORM_TOLERANCE:
        raise ConfigError(f'embedding={path!r} has norm {norm:.4g}: a domain=zero_shot embedding '
                          'mixes normalised condition embeddings, so its norm is at most 1. '
                          'If it is the right direction, divide it by its norm '
                          '(e / np.linalg.norm(e)); else ' + fix)
    if mode != 'zero_shot' and abs(norm - 1) > UNIT_NORM_TOLERANCE:
        raise ConfigError(f'embedding={path!r} has norm {norm:.4g}: a domain={mode} embedding '
                          'is normalised (norm 1), so this is likely another quantity (raw '
                          'features, another encoder\'s). If it is the right direction, divide '
                          'it by its norm (e / np.linalg.norm(e)); else ' + fix)
    return vector


def _rebuilt(cfg: DictConfig, plain) -> tuple[dict, object]:
    """The plain model's config (the run's model with ``domino=none``) and that model built
    from it with the folded weights, which must fit it exactly."""
    seg = _segmentor_cfg(cfg, OmegaConf.create(dict(scope='none')))
    rebuilt = _build(seg)
    try:
        rebuilt.load_state_dict(plain.state_dict(), strict=True)
    except RuntimeError as err:
        raise DominoSegError(f'the folded weights do not fit the model built with domino=none '
                             f'({err}); please report this.') from None
    return seg, rebuilt.eval()


def _out_path(cfg: DictConfig, checkpoint: str, tag: str) -> str:
    out = cfg.get('out')
    if out is None:
        stem = osp.splitext(osp.abspath(checkpoint))[0]
        out = f'{stem}_{tag}.{cfg.format}'
    out = str(out)
    if osp.isdir(out):
        raise ConfigError(f'out={out!r} is a folder; out= names the file to write, e.g. '
                          f'out={osp.join(out, "model." + cfg.format)}.')
    if cfg.format == 'pth' and out.lower().endswith('.py'):
        raise ConfigError(f'out={out!r}: the checkpoint\'s config is written beside it as '
                          '<out without suffix>.py, which is this name; name the checkpoint '
                          '.pth.')
    return out


def _outputs(cfg: DictConfig, out: str) -> list[str]:
    """The files :func:`deploy` writes for ``out``."""
    stem = osp.splitext(out)[0]
    return [out] + [stem + '.py'] * (cfg.format == 'pth') + \
        [stem + '_clip_image.onnx'] * bool(cfg.clip_tower)


def _deployed(path: str) -> bool:
    """Whether ``path`` is a checkpoint or ONNX graph this tool wrote (its fold recorded), so
    that deploying again may replace it and the files written with it."""
    if not osp.isfile(path):
        return False
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        return 'domino_fold' in loaded.get('meta', {})
    except Exception:  # not a torch checkpoint (torch's errors vary with the file)
        pass
    try:
        import onnx
        graph = onnx.load(path, load_external_data=False)
    except Exception:  # onnx missing, or not an ONNX file
        return False
    return any(entry.key == 'source_checkpoint' for entry in graph.metadata_props)


def _logits(model, images: torch.Tensor, embedding) -> torch.Tensor:
    from domino_seg.models.export import SegmentorLogits
    e = None if embedding is None else torch.as_tensor(embedding)
    with torch.no_grad():
        return SegmentorLogits(model, e).eval()(images)


def _random_images(size: Sequence[int], batch: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, *size, generator=generator) * 255


def _check_fold(model, plain, embedding, size) -> float:
    """Largest |difference| between the logits of the Domino model for ``embedding`` and of
    the plain model, on a random image; an error when beyond float32 rounding."""
    images = _random_images(size)
    expected = _logits(model, images, embedding)
    got = _logits(plain, images, None)
    return _within(float((got - expected).abs().max()), float(expected.abs().max()),
                   'the folded model', 'the Domino model')


def _within(difference: float, scale: float, what: str, reference: str) -> float:
    """``difference``, checked to be float32 rounding for outputs up to ``scale``."""
    if not difference <= RTOL * max(1.0, scale):
        raise DominoSegError(f'{what} differs from {reference} by up to {difference:.3g} on a '
                             f'random image (outputs up to {scale:.3g}); this is a bug, please '
                             'report it.')
    return difference


def _test_pipeline(img_scale: Sequence[int]) -> list[dict]:
    """The run's evaluation pipeline without labels (load, resize to fit ``img_scale`` keeping
    the ratio, pack), loading with mmseg's own step: mmseg's ``inference_model`` then sees
    images as tools/test.py and tools/infer.py do."""
    from domino_seg.data.builder import eval_pipeline
    steps = eval_pipeline(OmegaConf.create(dict(img_scale=list(img_scale))), labels=False)
    return [dict(type='LoadImageFromFile')] + [step for step in steps
                                               if not step['type'].startswith('Load')]


def _meta_config(seg: dict, img_scale: Sequence[int]) -> str:
    """The plain model's mmengine config as a .py text (``init_model`` reads it, and
    ``inference_model`` its ``test_pipeline``); domino-seg's own types (CLIP/DINOv2 backbones)
    need ``custom_imports`` of domino_seg."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    types = set()

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get('type'), str):
                types.add(node['type'])
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)
    collect(seg)
    ours = sorted(t for t in types if (MODELS.get(t) is not None and
                                       MODELS.get(t).__module__.startswith('domino_seg')))
    config = dict(default_scope='mmseg', model=seg, test_pipeline=_test_pipeline(img_scale))
    if ours:
        config['custom_imports'] = dict(imports=['domino_seg'], allow_failed_imports=False)
    return Config(config).pretty_text


def _dataset_meta(num_classes: int) -> Optional[dict]:
    from mmseg.datasets import CityscapesDataset
    meta = CityscapesDataset.METAINFO
    if num_classes != len(meta['classes']):
        return None
    return dict(classes=list(meta['classes']), palette=[list(p) for p in meta['palette']])


def _write_pth(out: str, plain, seg: dict, img_scale: Sequence[int], fold_info: dict) -> str:
    """The plain checkpoint (tensors and plain containers only: loads with weights_only) and
    its config beside it; returns the config's path."""
    text = _meta_config(seg, img_scale)
    meta = dict(cfg=text, domino_fold=fold_info)
    dataset_meta = _dataset_meta(plain.decode_head.num_classes)
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta
    state_dict = {k: v.detach().cpu().contiguous() for k, v in plain.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(dict(state_dict=state_dict, meta=meta), buffer)
    with reported_write(out, WRITE_FIX):
        atomic_write_bytes(out, buffer.getvalue())
    config = osp.splitext(out)[0] + '.py'
    with reported_write(config, WRITE_FIX):
        atomic_write_bytes(config, text.encode())
    return config


def _write_onnx(out: str, plain, size, img_scale, fold_info: dict, verify: bool) -> dict:
    from domino_seg.models.export import (
        SegmentorLogits,
        export_segmentor_onnx,
        max_onnx_difference,
        onnx_session,
    )
    with reported_write(out, WRITE_FIX), atomic_path(out) as tmp:
        fixed = export_segmentor_onnx(plain, tmp, size, metadata=dict(
            fold_info,
            classes=(_dataset_meta(plain.decode_head.num_classes) or {}).get('classes')),
            img_scale=img_scale)
    report = dict(onnx_input_size='dynamic' if fixed is None else
                  f'{size[0]}x{size[1]} only ({fixed})', img_scale=list(img_scale))
    if not verify:
        return report
    session, wrapper = onnx_session(out), SegmentorLogits(plain).eval()
    sizes = [tuple(size)] + ([(size[0] + 32, size[1] + 64)] if fixed is None else [])
    differences = {}
    for h, w in sizes:
        images = _random_images((h, w), batch=2)
        try:
            difference = max_onnx_difference(session, wrapper, images)
        except Exception as err:  # onnxruntime's own errors
            raise DominoSegError(f'the ONNX graph {out} fails on a {h}x{w} image ({err}); '
                                 'please report this; format=pth works.') from None
        differences[f'{h}x{w}'] = _within(*difference, f'the ONNX graph {out} at {h}x{w}',
                                          'PyTorch')
    report['onnx_max_difference'] = differences
    return report


def _write_clip_tower(cfg: DictConfig, out: str, verify: bool) -> dict:
    from domino_seg.models.export import (
        ClipImageEmbedding,
        export_clip_image_onnx,
        max_onnx_difference,
        onnx_session,
    )
    generator = _generator(cfg.domain)
    if not hasattr(generator.encoder, 'model'):
        raise ConfigError('clip_tower=true: the domain encoder is not an open_clip model.')
    path = osp.splitext(out)[0] + '_clip_image.onnx'
    with reported_write(path, WRITE_FIX), atomic_path(path) as tmp:
        example = export_clip_image_onnx(generator, tmp)
    report = dict(clip_tower=path)
    if verify:
        difference = max_onnx_difference(onnx_session(path),
                                         ClipImageEmbedding(generator).eval(), example)
        report['clip_tower_max_difference'] = _within(
            *difference, f'the CLIP tower graph {path}', 'PyTorch')
    return report


def _print_report(report: dict, scope: str, mode: str) -> None:
    lines = [f'{report["format"]}: {report["out"]}',
             f'  folded for: {report["folded_for"]} (domino={scope}, domain={mode})']
    if 'config' in report:
        lines.append(f'  config: {report["config"]} (mmseg init_model(config, checkpoint), or '
                     'tools/train.py load_from= with domino=none)')
    if 'fold_max_difference' in report:
        lines.append(f'  exact: max |logit difference| to the Domino model '
                     f'{report["fold_max_difference"]:.2g} on a random '
                     f'{report["size"][0]}x{report["size"][1]} image (float32 rounding)')
    if 'onnx_input_size' in report:
        lines.append(f'  input: image (N, 3, H, W) float, BGR 0..255 -> logits; H x W: '
                     f'{report["onnx_input_size"]}; resize images first to fit '
                     f'data.img_scale={report["img_scale"]} (W, H) keeping the ratio, as '
                     'tools/infer.py does (the ONNX metadata "resize" says how)')
    for size, difference in report.get('onnx_max_difference', {}).items():
        lines.append(f'  onnxruntime vs PyTorch at {size}: max |difference| {difference:.2g}')
    if 'clip_tower' in report:
        lines.append(f'  CLIP image tower: {report["clip_tower"]} (image -> embedding, '
                     'condition probabilities)')
    if scope != 'none' and mode in ('zero_shot', 'image'):
        lines.append('  note: ' + ZERO_SHOT_CAVEAT)
    print('\n'.join(lines), flush=True)
