"""Procedural street scenes in perspective: the clear-weather half of the synthetic benchmark.

Scene assembly: `render_scene` samples a layout (camera, sun, street), paints the sky and the
ground, collects the roadside and the objects as (distance, painter) items and paints them far
to near with a depth buffer, which yields the label map and a depth map consistent with the
geometry. The parts live in their own modules: `geometry` (camera, buffers, planes),
`materials` (colours, noise, surface looks), `layout`, `ground`, `roadside` and `objects`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import ID, Canvas, Item, Light, Sun
from .ground import paint_ground, paint_sky
from .layout import make_camera, make_street, make_sun
from .materials import smooth_noise
from .objects import pedestrians, signs, street_lamps, traffic_lights, vehicles
from .roadside import background, boundaries, buildings, trees


@dataclass
class Scene:
    image: np.ndarray      # H x W x 3 uint8 RGB, clear daylight
    label: np.ndarray      # H x W uint8 Cityscapes trainIds
    depth: np.ndarray      # H x W float32 metres along the optical axis; sky = SKY_DEPTH
    lights: list[Light]    # (x, y, radius, rgb) in pixels: lamps, vehicle/traffic lights, windows
    sun: Sun


TEXTURE = np.zeros(256, np.float32)   # per-class strength of fine texture noise
TEXTURE[list(ID.values())] = [0.05, 0.05, 0.05, 0.07, 0.06, 0.04, 0.04, 0.03, 0.16, 0.12, 0.015,
                              0.04, 0.04, 0.03, 0.03, 0.03, 0.03, 0.04, 0.04]


def render_scene(height: int, width: int, rng: np.random.Generator) -> Scene:
    """Render one random clear-weather street scene with labels, depth, lights and sun."""
    camera = make_camera(height, width, rng)
    sun = make_sun(rng)
    street = make_street(rng)
    canvas = Canvas(camera)
    shadows: list = []
    items: list[Item] = []
    for side in (-1, 1):
        items += buildings(street, side, sun, shadows, rng)
        items += boundaries(street, side, sun, rng)
        items += trees(street, side, sun, rng)
        items += street_lamps(street, side, rng)
    items += background(street, rng)
    items += signs(street, rng)
    items += traffic_lights(street, rng)
    items += vehicles(street, sun, shadows, rng)
    items += pedestrians(street, sun, rng)
    paint_sky(canvas, sun, rng)
    paint_ground(canvas, street, sun, shadows)
    for _, paint in sorted(items, key=lambda item: -item[0]):   # far to near
        paint(canvas)
    image = finish(canvas, rng)
    return Scene(image=image, label=canvas.label, depth=canvas.depth,
                 lights=canvas.visible_lights(), sun=sun)


def finish(canvas: Canvas, rng: np.random.Generator) -> np.ndarray:
    """Per-class texture noise, a little optical blur and sensor noise; to uint8."""
    h, w = canvas.label.shape
    fine = rng.standard_normal((h, w)).astype(np.float32)
    blotches = smooth_noise(rng, (h, w), 4)
    texture = TEXTURE[canvas.label] * (0.7 * fine + 0.5 * blotches)
    rgb = canvas.rgb * (1 + texture)[..., None]
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.5)
    rgb += rng.normal(0, 0.008, rgb.shape).astype(np.float32)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
