"""A prediction drawn over its image (``tools/infer.py``): the image blended with the class
colours of the dataset palette (:func:`domino_seg.evaluation.visualize.colorize`), and a legend
strip below it naming the classes in their colours."""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from domino_seg.evaluation.visualize import IGNORE_COLOR, colorize


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _text_width(font, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def legend_strip(width: int, classes: Sequence[str], palette: Sequence[Sequence[int]],
                 ids: Sequence[int]) -> np.ndarray:
    """An RGB strip ``width`` pixels wide naming the classes ``ids`` (255: ignore), each as a
    swatch of its colour and its name, in rows that wrap at ``width``."""
    from PIL import Image, ImageDraw
    size = int(np.clip(width / 64, 9, 28))
    font = _font(size)
    pad, swatch, gap = max(2, size // 3), size, size
    entries = [(classes[i] if i < len(classes) else 'ignore',
                tuple(palette[i]) if i < len(palette) else IGNORE_COLOR) for i in ids]
    rows, row, used = [], [], pad
    for name, colour in entries:
        need = swatch + pad + _text_width(font, name) + gap
        if row and used + need > width:
            rows.append(row)
            row, used = [], pad
        row.append((name, colour, used))
        used += need
    if row:
        rows.append(row)
    line = size + 2 * pad
    strip = Image.new('RGB', (width, max(1, len(rows)) * line + pad), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for r, row in enumerate(rows):
        top = pad + r * line
        for name, colour, left in row:
            draw.rectangle([left, top + 1, left + swatch - 1, top + swatch], fill=colour,
                           outline=(0, 0, 0) if colour == IGNORE_COLOR else None)
            draw.text((left + swatch + pad, top), name, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def overlay(image: np.ndarray, label: np.ndarray, classes: Sequence[str],
            palette: Sequence[Sequence[int]], alpha: float = 0.5,
            legend_ids: Optional[Sequence[int]] = None) -> np.ndarray:
    """``image`` (HxWx3 uint8 RGB) blended with the colours of ``label`` (HxW trainIds;
    ``alpha`` is the weight of the colours), above a legend of ``legend_ids`` (default: the
    classes in ``label``); the result is W wide and H + the legend's height tall."""
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(f'image {image.shape[:2]} and label {label.shape[:2]} differ in size')
    colours = colorize(label, palette).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    blended = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    ids = sorted(np.unique(label).tolist()) if legend_ids is None else list(legend_ids)
    return np.concatenate([blended, legend_strip(image.shape[1], classes, palette, ids)])
