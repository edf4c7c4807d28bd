"""What tools/infer.py does: segment images and videos with a trained checkpoint
(:class:`domino_seg.apis.inference.Segmenter`) and write overlays and label maps."""
from __future__ import annotations

import errno
import glob
import json
import math
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, ListConfig

from domino_seg.apis.inference import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Segmenter
from domino_seg.conditions import image_stem
from domino_seg.errors import ConfigError, DataError
from domino_seg.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_png,
    check_out_folder,
    check_outputs,
    inside,
    recorded_config_path,
    reported_write,
)

OVERLAY_SUFFIX = '_overlay.png'
LABEL_SUFFIX = '_labelTrainIds.png'  # as tools/test.py save_predictions=true
VIDEO_CONTAINER = {'mp4v': '.mp4', 'avc1': '.mp4', 'h264': '.mp4', 'hev1': '.mp4',
                   'mjpg': '.avi', 'xvid': '.avi', 'divx': '.avi'}


@dataclass(frozen=True)
class Input:
    path: str
    stem: str  # the output name: the path below its folder or glob, without the image suffix

    @property
    def is_video(self) -> bool:
        return self.path.lower().endswith(VIDEO_SUFFIXES)


def _magic(text: str) -> bool:
    return glob.has_magic(text)


def _glob_base(pattern: str) -> str:
    """The folder above a glob's first wildcard, which output names are relative to."""
    parts = pattern.split(os.sep)
    first = next(i for i, part in enumerate(parts) if _magic(part))
    return os.sep.join(parts[:first]) or ('/' if pattern.startswith(os.sep) else '.')


def _media(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES + VIDEO_SUFFIXES)


def find_inputs(spec, out: str) -> list[Input]:
    """The images and videos ``spec`` names (a file, a folder searched recursively, a glob,
    or a list of these), in order, each with its output stem; files under ``out`` (earlier
    outputs) are left out of folders and globs. Nothing found, a glob that leads out of the
    folder it starts from (its outputs would leave ``out``), or two inputs that would write the
    same files: a DataError."""
    specs = list(spec) if isinstance(spec, (list, tuple, ListConfig)) else [spec]
    if not specs:
        raise DataError('input=[] names no image or video.')
    found: list[Input] = []
    for item in specs:
        item = osp.expanduser(str(item))
        if osp.isfile(item):
            found.append(Input(item, image_stem(osp.basename(item))))
            continue
        if osp.isdir(item):
            base = item
            paths = [osp.join(root, name) for root, _, names in os.walk(item) for name in names]
            what = f'the folder {item}'
        elif _magic(item):
            base = _glob_base(item)
            paths = [p for p in glob.glob(item, recursive=True) if osp.isfile(p)]
            what = f'the glob {item!r}'
        else:
            raise DataError(f'input={item}: no such file or folder (nor a glob: it has no * ? '
                            '[]). Give an image, a video, a folder or a glob.')
        paths = sorted(p for p in paths if _media(p) and not inside(p, out))
        if not paths:
            raise DataError(f'input={item}: {what} holds no image ({", ".join(IMAGE_SUFFIXES)}) '
                            f'or video ({", ".join(VIDEO_SUFFIXES)})' +
                            (f' outside out={out}' if inside(out, base) else '') + '.')
        for path in paths:
            stem = image_stem(osp.relpath(path, base))
            if '..' in stem.split(os.sep):
                raise DataError(f'input={item}: {path} lies outside {base}, the folder the glob '
                                'starts from (it goes up with ..), so its outputs would land '
                                f'outside out={out}. Give its folder as an input of its own.')
            found.append(Input(path, stem))
    written: dict[str, str] = {}
    for one in found:
        other = written.setdefault(one.stem, one.path)
        if other != one.path:
            raise DataError(f'{other} and {one.path} would both write {one.stem}'
                            f'{OVERLAY_SUFFIX}: give them separately, with different out=.')
    return list(dict.fromkeys(found))


def _condition(cfg: DictConfig) -> Optional[str]:
    top, nested = cfg.get('condition'), cfg.domain.get('condition')
    if top is not None and nested is not None and top != nested:
        raise ConfigError(f'condition={top} and domain.condition={nested} differ: give one.')
    return top if top is not None else nested


def _check_keys(cfg: DictConfig) -> None:
    alpha = cfg.alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ConfigError(f'alpha={alpha!r}: the weight of the class colours takes a number in '
                          '0..1 (0: the image only, 1: the colours only).')
    if type(cfg.batch_size) is not int or cfg.batch_size < 1:
        raise ConfigError(f'batch_size={cfg.batch_size!r} takes an integer >= 1.')
    fps = cfg.video_fps
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float))
                            or not math.isfinite(fps) or fps <= 0):
        raise ConfigError(f'video_fps={fps!r} takes a number > 0, or null (the input\'s).')
    codec = str(cfg.video_codec)
    if len(codec) != 4:
        raise ConfigError(f'video_codec={codec!r} is not a fourcc code (4 characters), e.g. '
                          'mp4v (.mp4) or MJPG (.avi).')


# how a failed write (a full disk, no permission) ends: the message of reported_write
WRITE_FIX = ('Free space or make out= writable (or choose another out=), and run the same '
             'command again: the files written before are whole.')


def _check_written(path: str, frames: int) -> None:
    """OpenCV's VideoWriter ignores failed writes (a full disk): read the frame count back,
    so that a truncated video is an error, not a result."""
    import cv2
    capture = cv2.VideoCapture(path)
    try:
        written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if written != frames:
        raise OSError(errno.EIO, f'OpenCV wrote {written} of the video\'s {frames} frames '
                                 '(a full disk?)')


def _video_path(item: Input, out: str, codec: str) -> str:
    return osp.join(out, item.stem + '_overlay' + VIDEO_CONTAINER.get(codec.lower(), '.avi'))


def _outputs(inputs: Sequence[Input], out: str, codec: str) -> list[str]:
    """Every file this run writes, in order."""
    return [path for item in inputs
            for path in ([_video_path(item, out, codec)] if item.is_video else
                         [osp.join(out, item.stem + OVERLAY_SUFFIX),
                          osp.join(out, item.stem + LABEL_SUFFIX)])] + \
        [osp.join(out, 'infer.json')]


def _earlier_outputs(out: str) -> set[str]:
    """The files an earlier run wrote into ``out`` (its ``infer.json`` and those it lists),
    which a new run may replace, resolved."""
    index = osp.join(out, 'infer.json')
    try:
        with open(index) as f:
            report = json.load(f)
        records = report['images'] + report['videos']
        earlier = [record[key] for record in records for key in ('overlay', 'labels')
                   if key in record]
    except (OSError, ValueError, TypeError, KeyError):
        return set()
    return {osp.realpath(path) for path in earlier + [index] if isinstance(path, str)}


def _write_png(path: str, array: np.ndarray) -> None:
    with reported_write(path, WRITE_FIX):
        atomic_write_png(path, array)


def _write_image(segmenter: Segmenter, prediction, stem: str, out: str, alpha: float) -> dict:
    overlay = osp.join(out, stem + OVERLAY_SUFFIX)
    labels = osp.join(out, stem + LABEL_SUFFIX)
    _write_png(overlay, segmenter.overlay(prediction, alpha))
    _write_png(labels, prediction.label)
    record = dict(input=prediction.name, overlay=overlay, labels=labels)
    if prediction.condition is not None:
        record['condition'] = prediction.condition
    if prediction.condition_probabilities is not None:
        record['condition_probabilities'] = prediction.condition_probabilities
    return record


def _frames(capture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield np.ascontiguousarray(frame[..., ::-1])  # BGR -> RGB


def write_video(segmenter: Segmenter, item: Input, out: str, cfg: DictConfig) -> dict:
    """The overlay video of ``item`` (every frame, with a legend of all classes)."""
    import cv2
    from tqdm import tqdm
    capture = cv2.VideoCapture(item.path)
    if not capture.isOpened():
        raise DataError(f'video file {item.path} cannot be opened by OpenCV: it is damaged, or '
                        'its codec is not in this OpenCV build (convert it, e.g. ffmpeg -i '
                        f'{osp.basename(item.path)} -c:v libx264 out.mp4).')
    fps = cfg.video_fps or capture.get(cv2.CAP_PROP_FPS) or 25.0
    codec = str(cfg.video_codec)
    path = _video_path(item, out, codec)
    ext = osp.splitext(path)[1]
    bar = tqdm(total=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0) or None,
               desc=osp.basename(item.path), unit='frame', file=sys.stderr)
    writer, frames, sums = None, 0, None
    legend = list(range(len(segmenter.classes)))
    try:
        with reported_write(path, WRITE_FIX), atomic_path(path) as tmp:
            for prediction in segmenter.predict_iter(_frames(capture),
                                                     batch_size=cfg.batch_size):
                picture = segmenter.overlay(prediction, cfg.alpha, legend_ids=legend)
                if writer is None:
                    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*codec), float(fps),
                                             (picture.shape[1], picture.shape[0]))
                    if not writer.isOpened():
                        raise ConfigError(f'OpenCV cannot write {ext} videos with the codec '
                                          f'video_codec={codec}: choose mp4v (.mp4) or MJPG '
                                          '(.avi).')
                writer.write(np.ascontiguousarray(picture[..., ::-1]))
                probs = prediction.condition_probabilities
                if probs is not None:
                    sums = {c: (sums or {}).get(c, 0.0) + p for c, p in probs.items()}
                frames += 1
                bar.update(1)
            if writer is None:
                raise DataError(f'video file {item.path} holds no frame OpenCV can decode.')
            writer.release()  # (before the rename)
            writer = None
            _check_written(tmp, frames)
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    record = dict(input=item.path, overlay=path, frames=frames, fps=float(fps))
    if segmenter.condition is not None:
        record['condition'] = segmenter.condition
    if sums is not None:
        record['mean_condition_probabilities'] = {c: s / frames for c, s in sums.items()}
    return record


def infer(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict:
    """Segment every image and video ``cfg.input`` names with ``cfg.checkpoint`` into
    ``cfg.out``; returns (and writes to ``<out>/infer.json``) what was written."""
    from tqdm import tqdm
    _check_keys(cfg)
    out = str(cfg.out)
    check_out_folder(out)
    inputs = find_inputs(cfg.input, out)
    checkpoint = str(cfg.checkpoint)
    earlier = _earlier_outputs(out)
    check_outputs(_outputs(inputs, out, str(cfg.video_codec)), out,
                  [item.path for item in inputs] + [checkpoint, recorded_config_path(checkpoint)],
                  ours=lambda path: osp.realpath(path) in earlier)
    segmenter = Segmenter.from_config(cfg, checkpoint, overrides, device=cfg.device,
                                      condition=_condition(cfg), batch_size=cfg.batch_size,
                                      require_condition=True)
    print(segmenter.describe(), flush=True)
    images = [item for item in inputs if not item.is_video]
    videos = [item for item in inputs if item.is_video]
    records: dict[str, list] = dict(images=[], videos=[])
    if images:
        with tqdm(total=len(images), desc='infer', unit='img', file=sys.stderr) as bar:
            predictions = segmenter.predict_iter([item.path for item in images])
            for item, prediction in zip(images, predictions):
                records['images'].append(_write_image(segmenter, prediction, item.stem, out,
                                                      cfg.alpha))
                bar.update(1)
    for item in videos:
        records['videos'].append(write_video(segmenter, item, out, cfg))
    report = dict(checkpoint=checkpoint, model=segmenter.describe(),
                  classes=segmenter.classes, **records)
    index = osp.join(out, 'infer.json')
    with reported_write(index, WRITE_FIX):
        atomic_write_json(index, report)
    lines = [f'{len(images)} image(s) -> {out} (*{OVERLAY_SUFFIX}, *{LABEL_SUFFIX})'] * \
        bool(images) + [f'{len(videos)} video(s) -> {out} (*_overlay.mp4/.avi, '
                        f'{sum(v["frames"] for v in records["videos"])} frames)'] * bool(videos)
    print('\n'.join(lines + [f'index: {osp.join(out, "infer.json")}']), flush=True)
    return report
