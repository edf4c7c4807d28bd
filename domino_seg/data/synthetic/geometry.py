"""Camera, buffers and planes: where on the image a point of the street lands.

A pinhole camera looks down a straight street (x right, y up, z forward, metres; the camera is
at x = 0, z = 0, ``elevation`` metres above the ground). Everything standing on the ground is an
upright plane (facing the camera, or parallel to the road) painted into colour, label and depth
buffers with a depth test, so the label and depth maps stay consistent with the picture. Kept
apart from what is drawn (materials, objects) so the projection can be read, and checked, alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
           'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
           'bus', 'train', 'motorcycle', 'bicycle')
ID = {name: train_id for train_id, name in enumerate(CLASSES)}
SKY_DEPTH = 1000.0
TRANSPARENT = -1                 # material label for "this plane has no surface here"
MIN_THIN_PX = 4.0                # poles, sign plates etc. never get thinner than this

# A material maps world coordinates on a plane to (rgb float32 [..., 3] in 0..1, int16 labels).
Material = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Light = tuple[float, float, float, tuple[int, int, int]]


@dataclass(frozen=True)
class Sun:
    """Daylight: direct sun from (azimuth, elevation) plus ambient sky light.

    azimuth 0 means the sun is behind the camera, +pi/2 from the right, pi straight ahead.
    """
    azimuth: float
    elevation: float
    ambient: float
    direct: float

    @property
    def direction(self) -> np.ndarray:
        """Unit vector pointing towards the sun in camera coordinates."""
        ce = math.cos(self.elevation)
        return np.array([ce * math.sin(self.azimuth), math.sin(self.elevation),
                         -ce * math.cos(self.azimuth)])

    def shade(self, normal: tuple[float, float, float]) -> float:
        """Lambertian brightness of a surface with this outward normal."""
        return self.ambient + self.direct * max(0.0, float(np.dot(normal, self.direction)))


@dataclass(frozen=True)
class Camera:
    height: int
    width: int
    focal: float           # pixels
    horizon: float         # image row of the horizon
    centre: float          # image column of the vanishing point
    elevation: float       # metres above the ground

    def col(self, x, z):
        return self.centre + self.focal * x / z

    def row(self, y, z):
        return self.horizon + self.focal * (self.elevation - y) / z

    def world_x(self, col, z):
        return (col - self.centre) * z / self.focal

    def world_y(self, row, z):
        return self.elevation - (row - self.horizon) * z / self.focal

    def metres(self, pixels: float, z: float) -> float:
        """Size in metres that spans `pixels` at distance z (to keep thin things visible)."""
        return pixels * z / self.focal


class Canvas:
    """Colour, label and depth buffers; `paint` keeps whatever is nearer (depth test)."""

    def __init__(self, camera: Camera):
        self.camera = camera
        shape = (camera.height, camera.width)
        self.rgb = np.zeros(shape + (3,), np.float32)
        self.label = np.full(shape, ID['sky'], np.uint8)
        self.depth = np.full(shape, SKY_DEPTH, np.float32)
        self.lights: list[tuple[float, float, float, tuple[int, int, int], float]] = []

    def paint(self, rows: slice, cols: slice, depth, rgb, label) -> None:
        visible = (label >= 0) & (depth <= self.depth[rows, cols])
        self.rgb[rows, cols][visible] = np.broadcast_to(rgb, visible.shape + (3,))[visible]
        self.label[rows, cols][visible] = np.broadcast_to(label, visible.shape)[visible]
        self.depth[rows, cols][visible] = np.broadcast_to(depth, visible.shape)[visible]

    def add_light(self, x: float, y: float, z: float, radius_m: float, rgb) -> None:
        """Register a light source at world (x, y, z) for the night renderer."""
        cam = self.camera
        radius = max(cam.focal * radius_m / z, 0.7)
        self.lights.append((float(cam.col(x, z)), float(cam.row(y, z)), float(radius),
                            tuple(int(c) for c in rgb), float(z)))

    def visible_lights(self) -> list[Light]:
        """Lights inside the image and not hidden behind something nearer."""
        h, w = self.label.shape
        out = []
        for x, y, radius, rgb, z in self.lights:
            if 0 <= x < w and 0 <= y < h and self.depth[int(y), int(x)] >= 0.97 * z:
                out.append((x, y, radius, rgb))
        return out


def _span(lo: float, hi: float, size: int) -> slice:
    """Pixels whose centres lie in [lo, hi), clipped to the image."""
    start = max(math.ceil(min(lo, hi) - 0.5), 0)
    stop = min(math.ceil(max(lo, hi) - 0.5), size)
    return slice(start, max(start, stop))


def front_plane(canvas: Canvas, z: float, x0: float, x1: float, y0: float, y1: float,
                material: Material) -> None:
    """Paint an upright rectangle facing the camera at distance z; the material sees (x, y)."""
    cam = canvas.camera
    cols = _span(cam.col(x0, z), cam.col(x1, z), cam.width)
    rows = _span(cam.row(y1, z), cam.row(y0, z), cam.height)
    if cols.start == cols.stop or rows.start == rows.stop:
        return
    u = cam.world_x(np.arange(cols.start, cols.stop) + 0.5, z)[None, :]
    v = cam.world_y(np.arange(rows.start, rows.stop) + 0.5, z)[:, None]
    rgb, label = material(u, v)
    canvas.paint(rows, cols, np.float32(z), rgb, label)


def side_plane(canvas: Canvas, x: float, z0: float, z1: float, y0: float, y1: float,
               material: Material) -> None:
    """Paint an upright plane parallel to the road at lateral x; the material sees (z, y)."""
    cam = canvas.camera
    if abs(x) < 0.05 or z1 <= 0.1:
        return
    z0 = max(z0, 0.1)
    cols = _span(cam.col(x, z0), cam.col(x, z1), cam.width)
    top = min(cam.row(y1, z0), cam.row(y1, z1))
    rows = _span(top, max(cam.row(y0, z0), cam.row(y0, z1)), cam.height)
    if cols.start == cols.stop or rows.start == rows.stop:
        return
    offset = np.arange(cols.start, cols.stop) + 0.5 - cam.centre
    with np.errstate(divide='ignore'):
        z = (cam.focal * x / offset)[None, :]
    z = np.where(z > 0, z, np.inf).astype(np.float32)
    v = cam.world_y(np.arange(rows.start, rows.stop)[:, None] + 0.5, z)
    rgb, label = material(z, v)
    inside = (z >= z0) & (z <= z1) & (v >= y0) & (v <= y1)
    canvas.paint(rows, cols, z, rgb, np.where(inside, label, TRANSPARENT))


def box(canvas: Canvas, x: float, z: float, width: float, height: float, length: float,
        near: Material, side: Material) -> None:
    """Paint the visible faces of an axis-aligned box: its near end and the side facing the
    road centre. Materials see coordinates relative to the box (u from its centre line or near
    end, v from the ground)."""
    left, right = x - width / 2, x + width / 2
    facing_us = right if right < 0 else left if left > 0 else None   # None: straight ahead
    if facing_us is not None:
        side_plane(canvas, facing_us, z, z + length, 0.0, height, lambda u, v: side(u - z, v))
    front_plane(canvas, z, left, right, 0.0, height, lambda u, v: near(u - x, v))


# ---------------------------------------------------------------------------------------------
# Deferred painting: scene parts are collected as (distance, painter) items, painted far to near


Item = tuple[float, Callable[[Canvas], None]]


def painter(function, **kwargs) -> Callable[[Canvas], None]:
    return lambda canvas: function(canvas, **kwargs)
