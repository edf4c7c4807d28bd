"""Segment your own images with a trained checkpoint: ``Segmenter`` (``tools/infer.py`` is its
command line).

    from domino_seg import Segmenter
    segmenter = Segmenter.from_checkpoint('work_dirs/synthetic/<run>/iter_600.pth')
    [result] = segmenter.predict('street.jpg', condition='fog')  # domain=text models
    result.label                     # H x W uint8 trainIds, at the image's size
    result.condition_probabilities   # domain=zero_shot: {'clear': 0.1, 'fog': 0.8, ...}

The model, Domino and domain settings are those the run recorded in the ``config.yaml``
beside the checkpoint (as tools/test.py reads them), and each image goes through the
evaluation pipeline of ``domino_seg.data.builder.eval_pipeline`` (resized to the run's
``data.img_scale``, keeping its aspect ratio) and the model's ``test_step``, so a label map is
the one tools/test.py predicts for the same image. The domain embedding comes from the
condition you name (``domain=text``; ``zero_shot`` models take one too, instead of what CLIP
sees), from the image (``zero_shot``: a CLIP-weighted mix of the conditions; ``image``: its
CLIP embedding) or is not needed (``domino=none``).
"""
from __future__ import annotations

import os
import os.path as osp
import sys
import typing
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from domino_seg import compat  # noqa: F401  (before mmseg)
from domino_seg.conditions import DOMAIN_OF_CONDITION
from domino_seg.domain.clip_generator import LABEL_MODES
from domino_seg.errors import CheckpointError, ConfigError, DataError, WeightsError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.gif', '.ppm',
                  '.pgm', '.pnm')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv')
# the models downsample by 32: a side shorter than this after resizing has no feature map
MIN_SIDE = 32

if typing.TYPE_CHECKING:
    from PIL.Image import Image as PILImage
ImageLike = Union[str, os.PathLike, np.ndarray, 'PILImage']


@dataclass
class Prediction:
    """One image's prediction.

    Attributes:
        label: H x W uint8 trainIds (the dataset's classes), at the input image's size.
        image: the H x W x 3 uint8 RGB image the model saw (before resizing).
        name: the file, for inputs given as paths (else None).
        condition: the prompt-bank condition whose text embedding was used (``domain=text``,
            or a condition given to a ``zero_shot`` model), else None.
        condition_probabilities: ``domain=zero_shot`` (no condition given): the probability
            CLIP assigned each condition of the prompt bank (they sum to 1), else None.
        embedding: the domain embedding the Domino layers got (float32 [D]); None without
            Domino layers.
    """

    label: np.ndarray
    image: np.ndarray = field(repr=False)
    name: Optional[str] = None
    condition: Optional[str] = None
    condition_probabilities: Optional[dict] = None
    embedding: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def likely_condition(self) -> Optional[str]:
        """The condition embedded, or else the one CLIP found most probable."""
        if self.condition is not None or not self.condition_probabilities:
            return self.condition
        return max(self.condition_probabilities, key=self.condition_probabilities.get)


# ---------------------------------------------------------------------------------------------
# images of any mode -> H x W x 3 uint8 RGB

def _unreadable(name: str, err: Exception) -> DataError:
    return DataError(f'image file {name} cannot be read ({type(err).__name__}: {err}): it is '
                     'truncated, empty or not an image file. Check it, or leave it out of '
                     'input=.')


def _sixteen_bit(image) -> bool:
    """A 16-bit-per-channel colour image, which PIL opens as 8-bit RGB (its high bytes)."""
    for tile in getattr(image, 'tile', None) or []:
        args = tile[-1] if isinstance(tile, tuple) else getattr(tile, 'args', None)
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ';16' in rawmode:
            return True
    return False


def pil_to_rgb(image, name: str, notes: list) -> np.ndarray:
    """A PIL image -> H x W x 3 uint8 RGB: grey and palette images to RGB, the alpha channel
    dropped, 16 bits scaled to 8 (their high byte), EXIF orientation applied; ``notes`` gets
    ``(kind, message)`` for each conversion worth saying. Other modes: a DataError."""
    from PIL import ImageOps
    sixteen = _sixteen_bit(image)  # (before loading: the tile list is emptied then)
    frames = getattr(image, 'n_frames', 1)
    image = ImageOps.exif_transpose(image)
    image.load()
    mode = image.mode
    if frames > 1:
        notes.append(('frames', f'{name} holds {frames} frames: the first is segmented.'))
    if mode.startswith('I;16') or mode == 'I':
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f'image file {name} is a {mode} image with values outside 0..65535 '
                            f'(min {values.min()}, max {values.max()}); save it as an 8- or '
                            '16-bit image.')
        notes.append(('16bit', f'{name} has 16 bits per channel: scaled to 8 bits.'))
        grey = (values.astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == 'F':
        raise DataError(f'image file {name} is a floating-point image (PIL mode F), which has no '
                        'fixed brightness range; save it as an 8- or 16-bit image.')
    if sixteen:
        notes.append(('16bit', f'{name} has 16 bits per channel: scaled to 8 bits.'))
    if mode in ('1', 'L', 'LA', 'La'):
        notes.append(('grey', f'{name} is a grey image: converted to RGB.'))
    if mode in ('P', 'PA'):
        notes.append(('palette', f'{name} is a palette image: converted to RGB.'))
    if mode in ('RGBA', 'RGBa', 'LA', 'La', 'PA') or 'transparency' in image.info:
        notes.append(('alpha', f'{name} has an alpha channel (transparency): dropped, the '
                               'colours are segmented as they are.'))
        image = image.convert('RGBA')
    try:
        rgb = image.convert('RGB')
    except (ValueError, OSError) as err:
        raise DataError(f'image file {name} has the image mode {mode!r}, which cannot be '
                        f'converted to RGB ({err}); save it as an RGB or grey image.') from None
    return np.asarray(rgb, dtype=np.uint8)


def array_to_rgb(array: np.ndarray, name: str, notes: list) -> np.ndarray:
    """An array -> H x W x 3 uint8 RGB: H x W grey, H x W x 3 RGB, H x W x 4 RGBA (alpha
    dropped), uint8 or uint16 (scaled to 8 bits)."""
    shape = f'{array.shape} {array.dtype}'
    if array.dtype == np.uint16:
        notes.append(('16bit', f'{name} has 16 bits per channel: scaled to 8 bits.'))
        array = (array >> 8).astype(np.uint8)
    if array.dtype != np.uint8:
        raise DataError(f'{name}: an image array must be uint8 (or uint16), got {shape}; '
                        'floats in 0..1: (array * 255).round().astype(np.uint8).')
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        notes.append(('grey', f'{name} is a grey image: converted to RGB.'))
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        notes.append(('alpha', f'{name} has an alpha channel (transparency): dropped, the '
                               'colours are segmented as they are.'))
        array = array[..., :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise DataError(f'{name}: expected an H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) '
                        f'image array, got {shape}.')
    return np.ascontiguousarray(array)


def load_image(image: ImageLike, name: Optional[str] = None,
               notes: Optional[list] = None) -> tuple[np.ndarray, Optional[str]]:
    """``image`` (a path, a PIL image or an array) -> (H x W x 3 uint8 RGB, its file name or
    None); unreadable files and unusable images are DataErrors naming them."""
    from PIL import Image, UnidentifiedImageError
    notes = [] if notes is None else notes
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if path.lower().endswith(VIDEO_SUFFIXES):
            raise DataError(f'{path} is a video: segment its frames (read with '
                            'cv2.VideoCapture, passed as RGB arrays), or run tools/infer.py '
                            f'input={path}.')
        if not osp.isfile(path):
            raise DataError(f'image file {path} does not exist.')
        try:
            with Image.open(path) as opened:
                return pil_to_rgb(opened, path, notes), path
        except DataError:
            raise
        except Image.DecompressionBombError as err:
            raise DataError(
                f'image file {path} is too large to decode safely ({err}): Pillow refuses '
                f'images of more than twice PIL.Image.MAX_IMAGE_PIXELS = '
                f'{Image.MAX_IMAGE_PIXELS} pixels. Resize it first (the model sees it resized '
                'to data.img_scale anyway), e.g. python -c "from PIL import Image; '
                "Image.MAX_IMAGE_PIXELS = None; im = Image.open('big.png'); "
                "im.thumbnail((4096, 4096)); im.save('small.png')\"; or, for a file you trust, "
                'set PIL.Image.MAX_IMAGE_PIXELS = None in Python before Segmenter.predict.'
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
            raise _unreadable(path, err) from None
    label = name or 'image'
    if isinstance(image, Image.Image):
        return pil_to_rgb(image, label, notes), name
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, label, notes), name
    if isinstance(image, torch.Tensor):
        raise DataError(f'{label}: pass an H x W x 3 uint8 RGB numpy array, a PIL image or a '
                        'path, not a torch.Tensor (tensor.permute(1, 2, 0).cpu().numpy()).')
    raise DataError(f'{label}: expected a path, a PIL image or an H x W x 3 uint8 RGB array, '
                    f'got {type(image).__name__}.')


# ---------------------------------------------------------------------------------------------
# the config of a checkpoint

def checkpoint_config(cfg: DictConfig, checkpoint: str, overrides: Sequence[str] = ()
                      ) -> DictConfig:
    """``cfg`` with the model, finetune, domino and domain groups and the ``data.img_scale``
    that the run which wrote ``checkpoint`` recorded (its ``config.yaml``), except what the
    ``overrides`` set, as tools/test.py does (the condition key of tools/infer.py,
    ``domain.condition``, describes the images, not the model); no embedding cache
    (``domain.cache_dir``)."""
    from domino_seg.config import command_line_keys, model_groups_in, with_recorded_model
    checkpoint = os.fspath(checkpoint)
    if not osp.isfile(checkpoint):
        raise CheckpointError(f'checkpoint={checkpoint!r} is not a file; pass the .pth that '
                              'tools/train.py wrote (see its work dir).')
    given = command_line_keys(overrides) - {'domain.condition'}
    merged = with_recorded_model(cfg, checkpoint, 'checkpoint', model_groups_in(given),
                                 keys=[] if given & {'data', 'data.img_scale'} else
                                 ['data.img_scale'])
    if merged.domain.get('cache_dir') is not None:
        with open_dict(merged):
            merged.domain.cache_dir = None
    return merged


def _model_device(device) -> torch.device:
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f'device={device!r} is not a device ({err}); e.g. cpu, cuda, '
                          'cuda:1, or null (a GPU if there is one).') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'device={device} but torch sees no GPU on this machine; use '
                          'device=cpu or device=null.')
    return device


def build_model(cfg: DictConfig, checkpoint: str, device: torch.device):
    """The segmentor ``cfg`` describes, with the weights of ``checkpoint`` (read by
    ``read_checkpoint``, checked to fit), in eval mode on ``device``."""
    import re

    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from domino_seg.config import segmentor_cfg
    from domino_seg.engine.runner import check_model_fits, load_weights, read_checkpoint
    init_default_scope('mmseg')
    seg = segmentor_cfg(cfg, load_pretrained=False)  # as in training and tools/test.py
    model = MODELS.build(ConfigDict(seg))  # (mmseg reads test_cfg.mode as an attribute)
    loaded = read_checkpoint(checkpoint)
    state_dict = {re.sub(r'^module\.', '', key): value
                  for key, value in loaded.get('state_dict', loaded).items()}
    check_model_fits(model, state_dict, checkpoint)
    load_weights(model, loaded)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------

def _say(message: str) -> None:
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


class Segmenter:
    """A trained checkpoint, ready to segment images (see the module's docstring).

    Build it with :meth:`from_checkpoint` (or :meth:`from_config` inside a tool). Attributes:
    ``mode`` (the domain embedding: ``text``, ``zero_shot``, ``image``, or ``none`` without
    Domino layers), ``conditions`` (the prompt bank's), ``classes`` and ``palette`` (the
    dataset's), ``img_scale``, ``device``, ``cfg`` (the composed config).
    """

    def __init__(self, cfg: DictConfig, model, generator=None, device='cpu',
                 condition: Optional[str] = None, batch_size: int = 4,
                 checkpoint: Optional[str] = None, bank=None,
                 notify: Callable[[str], None] = _say):
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope
        from mmseg.datasets import CityscapesDataset

        from domino_seg.data.builder import eval_pipeline
        self.cfg = cfg
        self.model = model
        self.generator = generator
        self.device = torch.device(device)
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.mode = cfg.domain.mode if cfg.domino.scope != 'none' else 'none'
        self.bank = bank if bank is not None else getattr(generator, 'bank', None)
        self.conditions = list(self.bank.conditions) if self.bank is not None else []
        self.img_scale = tuple(cfg.data.img_scale)
        self.classes = list(CityscapesDataset.METAINFO['classes'])
        self.palette = [list(c) for c in CityscapesDataset.METAINFO['palette']]
        self.notify = notify
        self._said: set[str] = set()
        init_default_scope('mmseg')
        # tools/test.py's pipeline after loading the file (the embedding is set beforehand)
        self.pipeline = Compose([step for step in eval_pipeline(cfg.data, labels=False)
                                 if not step['type'].startswith('Load')])
        self.condition = self.check_condition(condition)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike], device=None,
                        condition: Optional[str] = None, overrides: Sequence[str] = (),
                        batch_size: int = 4) -> 'Segmenter':
        """The model that wrote ``path`` (a .pth of tools/train.py, ``config.yaml`` beside it).

        Args:
            device: ``'cpu'``, ``'cuda'``, ... (None: a GPU if there is one).
            condition: the default condition of :meth:`predict` (``domain=text`` models need
                one, there or here), e.g. ``'fog'``; one of the prompt bank's conditions
                (``cityscapes`` means ``clear``).
            overrides: tools/train.py overrides applied to the recorded config (a group given
                here replaces the recorded one, as in tools/test.py), e.g.
                ``['data.img_scale=[1024,512]']``.
            batch_size: images per forward pass.
        """
        from domino_seg.config import compose
        overrides = list(overrides)
        # (work_dir=.: nothing is written, so the default work dir need not be creatable)
        cfg = compose(['work_dir=.'] + overrides, 'train')
        return cls.from_config(cfg, path, overrides, device=device, condition=condition,
                               batch_size=batch_size)

    @classmethod
    def from_config(cls, cfg: DictConfig, checkpoint: Union[str, os.PathLike],
                    overrides: Sequence[str] = (), device=None, condition: Optional[str] = None,
                    batch_size: int = 4, require_condition: bool = False,
                    notify: Callable[[str], None] = _say) -> 'Segmenter':
        """As :meth:`from_checkpoint`, from a composed config (tools/infer.py's) and the
        command-line ``overrides`` it was composed with. ``require_condition``: a
        ``domain=text`` model without ``condition`` is an error now, before anything is
        built."""
        from domino_seg.domain import builder as domain_builder
        from domino_seg.domain.prompts import load_prompt_bank
        checkpoint = os.fspath(checkpoint)
        cfg = checkpoint_config(cfg, checkpoint, overrides)
        device = _model_device(device)
        generator, bank = None, None
        if cfg.domino.scope != 'none':
            domain_builder.check_domain(cfg.domain)  # weights, prompt bank
            if cfg.domain.mode != 'none':
                bank = load_prompt_bank(cfg.domain.prompt_bank)
                _check_condition(cfg.domain.mode, condition, bank, require_condition)
        model = build_model(cfg, checkpoint, device)
        if bank is not None:  # the model's own embedder, which test_step would use
            generator = model.data_preprocessor.embedder.generator(device)
        return cls(cfg, model, generator, device, condition, batch_size, checkpoint, bank,
                   notify)

    def describe(self) -> str:
        """One line: the checkpoint, its model and domain embedding, the resize."""
        cfg = self.cfg
        labelled = f'domain={self.mode}' + (f' (condition {self.condition})'
                                            if self.condition else '')  # LABEL_MODES
        domain = {'zero_shot': 'domain=zero_shot (CLIP weighs the conditions '
                  f'{", ".join(self.conditions)} per image)', 'image': 'domain=image',
                  'none': 'no domain embedding'}.get(self.mode, labelled)
        if self.mode == 'zero_shot' and self.condition:
            domain = f'domain=zero_shot, but the condition {self.condition} is given'
        return (f'checkpoint={self.checkpoint}: model {cfg.model.get("name", "?")}, '
                f'domino={cfg.domino.scope}, {domain}; images resized to fit '
                f'{self.img_scale[0]}x{self.img_scale[1]}, on {self.device}')

    # -- conditions ------------------------------------------------------------------------

    def check_condition(self, condition: Optional[str]) -> Optional[str]:
        """The prompt-bank condition that ``condition`` names for this model (None: from the
        image, or no embedding); errors for unknown ones and for models that take none."""
        if condition is None:
            return None
        if self.mode == 'none':
            self.note('condition', f'condition={condition} is not used: this model has no '
                                   'Domino layers (domino=none).')
            return None
        _check_condition(self.mode, condition, self.bank, False)
        return DOMAIN_OF_CONDITION.get(condition, condition)

    def note(self, kind: str, message: str) -> None:
        """Say ``message`` once per ``kind`` (e.g. the first RGBA image)."""
        if kind not in self._said:
            self._said.add(kind)
            self.notify(message)

    # -- prediction ------------------------------------------------------------------------

    def predict(self, images: Union[ImageLike, Iterable[ImageLike]],
                condition: Optional[str] = None, batch_size: Optional[int] = None
                ) -> list[Prediction]:
        """Segment ``images``: paths, PIL images or arrays (H x W x 3 uint8 RGB; grey, RGBA
        and 16-bit are converted), one or an iterable of them; returns a Prediction each, in
        order. ``condition`` overrides the Segmenter's (``domain=text`` models need one)."""
        return list(self.predict_iter(images, condition, batch_size))

    def predict_iter(self, images: Union[ImageLike, Iterable[ImageLike]],
                     condition: Optional[str] = None, batch_size: Optional[int] = None
                     ) -> Iterator[Prediction]:
        """As :meth:`predict`, lazily: images are read a batch at a time."""
        from PIL import Image
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)  # N x H x W x C: a batch (e.g. video frames)
        elif isinstance(images, (str, os.PathLike, np.ndarray, Image.Image, torch.Tensor)):
            images = [images]
        label = self.check_condition(condition) if condition is not None else self.condition
        if self.mode in LABEL_MODES and label is None:
            _check_condition(self.mode, None, self.bank, True)
        size = batch_size or self.batch_size
        batch = []
        for index, image in enumerate(images):
            notes = []
            is_path = isinstance(image, (str, os.PathLike))
            rgb, name = load_image(image, None if is_path else f'images[{index}]', notes)
            for kind, message in notes:
                self.note(kind, message + ' (said for the first such image only)')
            batch.append((rgb, name if is_path else None, name))
            if len(batch) == size:
                yield from self._predict_batch(batch, label)
                batch = []
        if batch:
            yield from self._predict_batch(batch, label)

    def _embed(self, images: list[np.ndarray], condition: Optional[str]):
        """(embeddings [N] of float32 Tensor[D] or None, probabilities [N] of dict or None)."""
        count = len(images)
        if self.mode == 'none':
            return [None] * count, [None] * count
        if condition is not None:
            embedding = self.generator.embed_conditions([condition])[0].float().contiguous()
            return [embedding] * count, [None] * count
        features = self.generator.image_features(images, channel_order='rgb')
        embeddings = self.generator.embed_from_features(features).float()
        if not torch.isfinite(embeddings).all():
            clip = self.cfg.domain.clip
            raise WeightsError(f'CLIP {clip.arch!r} (domain.clip.pretrained={clip.pretrained!r})'
                               ' computes non-finite image embeddings; check its weights.')
        probabilities = [None] * count
        if self.mode == 'zero_shot':
            table = self.generator.condition_probabilities(features)
            probabilities = [dict(zip(self.conditions, row.tolist())) for row in table]
        return [e.contiguous() for e in embeddings], probabilities

    def _check_size(self, rgb: np.ndarray, name: str) -> None:
        import mmcv
        height, width = rgb.shape[:2]
        new_w, new_h = mmcv.rescale_size((width, height), self.img_scale) \
            if min(height, width) > 0 else (0, 0)
        if min(new_w, new_h) < MIN_SIDE:
            raise DataError(
                f'{name} is {width}x{height} pixels (WxH): resized to fit data.img_scale='
                f'[{self.img_scale[0]},{self.img_scale[1]}] it would be {new_w}x{new_h}, a side '
                f'under the {MIN_SIDE} pixels the model downsamples by. Crop it to a less '
                'elongated image, or raise data.img_scale.')

    @torch.no_grad()
    def _predict_batch(self, batch: list, condition: Optional[str]) -> list[Prediction]:
        from mmengine.dataset import pseudo_collate
        for rgb, _, label in batch:
            self._check_size(rgb, label)
        embeddings, probabilities = self._embed([rgb for rgb, _, _ in batch], condition)
        packed = []
        for (rgb, name, _), embedding in zip(batch, embeddings):
            results = dict(img=np.ascontiguousarray(rgb[..., ::-1]),  # BGR, as mmcv loads
                           img_shape=rgb.shape[:2], ori_shape=rgb.shape[:2])
            if name is not None:
                results['img_path'] = name
            if embedding is not None:
                results['domain_embedding'] = embedding
            packed.append(self.pipeline(results))
        by_shape: dict[tuple, list[int]] = {}  # a forward pass takes images of one size
        for i, sample in enumerate(packed):
            by_shape.setdefault(tuple(sample['inputs'].shape[1:]), []).append(i)
        labels: list = [None] * len(batch)
        for indices in by_shape.values():
            samples = self.model.test_step(pseudo_collate([packed[i] for i in indices]))
            for i, sample in zip(indices, samples):
                labels[i] = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        return [Prediction(label=label, image=rgb, name=name,
                           condition=condition if self.mode != 'none' else None,
                           condition_probabilities=probs,
                           embedding=None if embedding is None else embedding.numpy())
                for label, (rgb, name, _), embedding, probs
                in zip(labels, batch, embeddings, probabilities)]

    def overlay(self, prediction: Prediction, alpha: float = 0.5,
                legend_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """The image blended with its prediction's class colours, above a legend (see
        :func:`domino_seg.evaluation.overlay.overlay`), H x W x 3 uint8 RGB."""
        from domino_seg.evaluation.overlay import overlay
        return overlay(prediction.image, prediction.label, self.classes, self.palette, alpha,
                       legend_ids)


def _check_condition(mode: str, condition: Optional[str], bank, required: bool) -> None:
    """Errors: a ``text``/``onehot`` model without a condition (when ``required``), a condition the
    prompt bank lacks, a condition for an ``image`` model (whose embedding is the image's)."""
    if mode == 'none':
        return
    conditions = ', '.join(bank.conditions)
    if condition is None:
        if mode in LABEL_MODES and required:
            raise ConfigError(
                f'this checkpoint\'s model was trained with domain={mode}: it segments for a '
                f'known condition, and none was given. Name one of the prompt bank\'s '
                f'({conditions}): tools/infer.py ... condition=fog, or '
                "Segmenter.from_checkpoint(..., condition='fog') / predict(..., "
                "condition='fog').")
        return
    if mode == 'image':
        raise ConfigError(f'condition={condition}: this checkpoint\'s model was trained with '
                          'domain=image, whose domain embedding is the image\'s own CLIP '
                          'embedding; it takes no condition. Leave condition out.')
    label = DOMAIN_OF_CONDITION.get(condition, condition)
    if label not in bank.prompts:
        raise ConfigError(f'condition={condition!r} is not a condition of the prompt bank '
                          f'{bank.source}; choose one of: {conditions}.')
