"""Procedural street scenes in perspective: the clear-weather half of the synthetic benchmark.

A pinhole camera looks down a straight street (x right, y up, z forward, metres; the camera is
at x = 0, z = 0, ``elevation`` metres above the ground). The ground is rendered per pixel from
its world coordinates; everything standing on it is an upright plane (facing the camera, or
parallel to the road) whose look is a *material*: a function of the plane's world coordinates
``(u, v)`` returning colours and Cityscapes trainIds, so details such as windows, wheels and
tiles stay in perspective at any resolution. Planes are composited with a depth buffer, far to
near, which yields the label map and a depth map consistent with the geometry.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
           'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
           'bus', 'train', 'motorcycle', 'bicycle')
ID = {name: train_id for train_id, name in enumerate(CLASSES)}
SKY_DEPTH = 1000.0
TRANSPARENT = -1                 # material label for "this plane has no surface here"
MIN_THIN_PX = 2.5                # poles, sign plates etc. never get thinner than this

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


@dataclass
class Scene:
    image: np.ndarray      # H x W x 3 uint8 RGB, clear daylight
    label: np.ndarray      # H x W uint8 Cityscapes trainIds
    depth: np.ndarray      # H x W float32 metres along the optical axis; sky = SKY_DEPTH
    lights: list[Light]    # (x, y, radius, rgb) in pixels: lamps, vehicle and traffic lights, windows
    sun: Sun


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


class Layers:
    """Builds a material's output; later layers cover earlier ones."""

    def __init__(self, *coords: np.ndarray):
        shape = np.broadcast_shapes(*(np.shape(c) for c in coords))
        self.rgb = np.zeros(shape + (3,), np.float32)
        self.label = np.full(shape, TRANSPARENT, np.int16)

    def add(self, mask, colour, label: int) -> Layers:
        mask = np.broadcast_to(mask, self.label.shape)
        np.copyto(self.rgb, np.asarray(colour, np.float32), where=mask[..., None])
        self.label[mask] = label
        return self

    def out(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rgb, self.label


# ---------------------------------------------------------------------------------------------
# Geometry primitives


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
    side_x = x + width / 2 if x + width / 2 < 0 else x - width / 2
    if (x - width / 2) * (x + width / 2) > 0:
        side_plane(canvas, side_x, z, z + length, 0.0, height,
                   lambda u, v: side(u - z, v))
    front_plane(canvas, z, x - width / 2, x + width / 2, 0.0, height,
                lambda u, v: near(u - x, v))


# ---------------------------------------------------------------------------------------------
# Colours and patterns


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)),
                    np.float32)


def stripes(coord, period: float, duty: float, phase: float = 0.0):
    """True on the first `duty` fraction of every `period` (windows, tiles, dashes)."""
    return np.mod(coord - phase, period) < duty * period


def hash_noise(u, v, scale: float) -> np.ndarray:
    """Cheap value in [0, 1) fixed to world coordinates, so textures stick to surfaces."""
    n = np.sin(np.floor(u * scale) * 12.9898 + np.floor(v * scale) * 78.233) * 43758.5453
    return (n - np.floor(n)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Zero-mean, unit-ish noise with blobs about `cell` pixels wide."""
    small = rng.standard_normal((shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


# ---------------------------------------------------------------------------------------------
# Layout


@dataclass
class Street:
    """Lateral cross-section of the street (metres, camera at x = 0) and what lines it."""
    road_left: float
    road_right: float
    lane_width: float
    divider: float | None          # x of the two-way centre line; None for a one-way street
    verge: tuple[float, float]     # grass strip between kerb and sidewalk, (left, right)
    sidewalk: tuple[float, float]
    styles: tuple[str, str]        # 'urban', 'suburban' or 'park' for (left, right)
    crossing: tuple[float, float] | None   # z range of a cross street
    crosswalk: float | None        # z where a zebra crossing starts
    end: float                     # z where the street's buildings end
    colours: dict = field(default_factory=dict)

    def kerb(self, side: int) -> float:
        return self.road_left if side < 0 else self.road_right

    def lot(self, side: int) -> float:
        """Lateral position where private land begins (outer edge of the sidewalk)."""
        i = 0 if side < 0 else 1
        return self.kerb(side) + side * (self.verge[i] + self.sidewalk[i])

    def style(self, side: int) -> str:
        return self.styles[0 if side < 0 else 1]

    def crossing_at(self, z0: float, z1: float) -> bool:
        return self.crossing is not None and z1 > self.crossing[0] and z0 < self.crossing[1]


def make_camera(height: int, width: int, rng: np.random.Generator) -> Camera:
    focal = 1.105 * width * rng.uniform(0.9, 1.1)        # Cityscapes: 2262 px at 2048 wide
    return Camera(height=height, width=width, focal=focal,
                  horizon=height * rng.uniform(0.36, 0.5),
                  centre=width * (0.5 + rng.uniform(-0.12, 0.12)),
                  elevation=rng.uniform(1.2, 1.8))


def make_sun(rng: np.random.Generator) -> Sun:
    direct = rng.uniform(0.25, 0.65)
    return Sun(azimuth=rng.uniform(-math.pi, math.pi), elevation=rng.uniform(0.25, 1.1),
               ambient=rng.uniform(0.55, 0.7), direct=direct)


def make_street(rng: np.random.Generator) -> Street:
    lane_width = rng.uniform(2.8, 3.6)
    lanes = int(rng.choice([2, 2, 3, 4]))
    two_way = rng.random() < 0.75
    own_lane = int(rng.integers(lanes // 2 if two_way else 0, lanes))
    road_left = -(own_lane + 0.5) * lane_width + rng.uniform(-0.6, 0.6)
    parking = [rng.random() < 0.4 for _ in range(2)]
    road_right = road_left + lanes * lane_width + 2.2 * parking[1]
    road_left -= 2.2 * parking[0]
    styles = tuple(rng.choice(['urban', 'urban', 'suburban', 'park'], size=2))
    crossing = None
    if rng.random() < 0.55:
        start = rng.uniform(14, 45)
        crossing = (start, start + rng.uniform(8, 14))
    crosswalk = crossing[0] - 4.0 if crossing else (
        rng.uniform(10, 35) if rng.random() < 0.5 else None)
    return Street(
        road_left=road_left, road_right=road_right, lane_width=lane_width,
        divider=road_left + 2.2 * parking[0] + (lanes // 2) * lane_width if two_way else None,
        verge=tuple(rng.uniform(1.0, 2.5) if rng.random() < 0.3 else 0.0 for _ in range(2)),
        sidewalk=(rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5)),
        styles=styles, crossing=crossing, crosswalk=crosswalk, end=rng.uniform(70, 160),
        colours=_street_colours(rng))


def _street_colours(rng: np.random.Generator) -> dict:
    grass = rng.random() < 0.75
    return {
        'road': hsv(rng.uniform(0.55, 0.65), rng.uniform(0.0, 0.08), rng.uniform(0.28, 0.42)),
        'marking': hsv(0.13, 0.7, 0.85) if rng.random() < 0.3 else hsv(0, 0, 0.88),
        'sidewalk': hsv(rng.uniform(0.0, 0.12), rng.uniform(0.05, 0.3), rng.uniform(0.55, 0.75)),
        'kerb': hsv(0, 0, rng.uniform(0.7, 0.85)),
        'terrain': (hsv(rng.uniform(0.15, 0.22), rng.uniform(0.35, 0.6), rng.uniform(0.45, 0.62))
                    if grass else
                    hsv(rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.55), rng.uniform(0.4, 0.58))),
    }


# ---------------------------------------------------------------------------------------------
# Sky and ground


def paint_sky(canvas: Canvas, sun: Sun, rng: np.random.Generator) -> None:
    """Blue gradient, paler towards the horizon, soft clouds and a glow around a visible sun."""
    cam = canvas.camera
    h, w = canvas.label.shape
    hue = rng.uniform(0.55, 0.62)
    zenith = hsv(hue, rng.uniform(0.35, 0.65), rng.uniform(0.7, 0.92))
    horizon = hsv(hue, rng.uniform(0.05, 0.2), rng.uniform(0.85, 0.98))
    t = np.clip((cam.horizon - np.arange(h) - 0.5) / max(cam.horizon, 1.0), 0, 1)
    sky = horizon + (zenith - horizon) * (t ** 0.7)[:, None, None]
    cover = rng.uniform(0.0, 0.7)
    cloud = smooth_noise(rng, (h, w), max(w // 10, 2)) + 0.5 * smooth_noise(
        rng, (h, w), max(w // 40, 2))
    cloud = np.clip((cloud - 1.2 + 1.6 * cover) * 1.5, 0, 1)[..., None]
    cloud_colour = hsv(0.6, 0.03, rng.uniform(0.82, 0.98))
    sky = sky * (1 - cloud) + cloud_colour * cloud
    s = sun.direction
    if s[2] > 0.05:
        sx, sy = cam.centre + cam.focal * s[0] / s[2], cam.horizon - cam.focal * s[1] / s[2]
        yy, xx = np.mgrid[0:h, 0:w]
        glow = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * (0.15 * w) ** 2))
        sky = sky + 0.35 * glow[..., None].astype(np.float32)
    canvas.rgb[:] = np.clip(sky, 0, 1)


def paint_ground(canvas: Canvas, street: Street, sun: Sun, shadows: list) -> None:
    """Road, markings, kerbs, sidewalks and terrain, textured and shadowed in world coordinates."""
    cam = canvas.camera
    top = max(math.floor(cam.horizon + 0.5) + 1, 0)
    if top >= cam.height:
        return
    rows = np.arange(top, cam.height, dtype=np.float32)[:, None] + 0.5
    z = cam.focal * cam.elevation / (rows - cam.horizon)
    x = cam.world_x(np.arange(cam.width, dtype=np.float32)[None, :] + 0.5, z)
    label, rgb = _ground_surfaces(street, x, z, pixel=z / cam.focal)
    grain = hash_noise(x, z, 6.0) - 0.5
    patches = hash_noise(x + 0.3 * grain, z, 0.6) - 0.5
    fade = np.clip(2.0 - z / 25.0, 0, 1)        # texture averages out with distance
    rgb *= (1 + (0.12 * grain + 0.1 * patches) * fade)[..., None]
    sun_in, contact = _shadow(x, z, shadows, sun)
    light = sun.ambient * (1 - 0.35 * contact) + sun.direct * max(float(sun.direction[1]), 0.0) * (1 - sun_in)
    rgb *= light[..., None]
    canvas.rgb[top:] = rgb
    canvas.label[top:] = label
    canvas.depth[top:] = np.broadcast_to(z, label.shape)


def _ground_surfaces(street: Street, x, z, pixel):
    """Label and base colour of every ground pixel from its world position."""
    col = street.colours
    label = np.full(np.broadcast_shapes(x.shape, z.shape), ID['terrain'], np.uint8)
    rgb = np.empty(label.shape + (3,), np.float32)
    rgb[:] = col['terrain']
    tiles = (stripes(x, 0.5, 0.1) | stripes(z, 0.5, 0.1)) * np.clip(1.5 - z / 20.0, 0, 1)
    walk_rgb = col['sidewalk'] * (1 - 0.12 * tiles)[..., None]
    for side, i in ((-1, 0), (1, 1)):
        inner = side * street.kerb(side) + street.verge[i]   # distances from the camera line
        walk = (side * x >= inner) & (side * x < side * street.lot(side))
        np.copyto(rgb, walk_rgb, where=walk[..., None])
        label[walk] = ID['sidewalk']
        rgb[walk & (side * x < inner + 0.3)] = col['kerb']
    road = (x >= street.road_left) & (x <= street.road_right)
    if street.crossing is not None:
        z0, z1 = street.crossing
        road |= (z >= z0) & (z <= z1)
        corner = ((z >= z0 - 2.5) & (z < z0)) | ((z > z1) & (z <= z1 + 2.5))
        corner &= ~road & ((x < street.lot(-1)) | (x > street.lot(1)))
        rgb[corner] = col['sidewalk']
        label[corner] = ID['sidewalk']
    rgb[road] = col['road']
    label[road] = ID['road']
    rgb[road & _markings(street, x, z, pixel)] = col['marking']
    return label, rgb


def _markings(street: Street, x, z, pixel):
    """Lane lines, edge lines, divider and zebra crossing; they stay `road` in the labels."""
    half = np.maximum(0.07, 0.5 * pixel)         # never thinner than ~1 px far away
    marks = np.zeros(np.broadcast_shapes(x.shape, z.shape), bool)
    lane = street.lane_width
    line = street.road_left + lane
    while line < street.road_right - 1.0:
        solid = street.divider is not None and abs(line - street.divider) < 0.1
        marks |= (np.abs(x - line) < half) & (True if solid else stripes(z, 9.0, 0.4))
        line += lane
    for edge in (street.road_left + 0.3, street.road_right - 0.3):
        marks |= np.abs(x - edge) < 0.8 * half
    if street.crossing is not None:
        marks &= (z < street.crossing[0]) | (z > street.crossing[1])
    if street.crosswalk is not None:
        zebra = (z >= street.crosswalk) & (z <= street.crosswalk + 3.5) & stripes(x, 1.0, 0.5)
        stop_line = (z >= street.crosswalk - 1.3) & (z <= street.crosswalk - 0.8)
        marks |= zebra | stop_line
    return marks


def _shadow(x, z, shadows: list, sun: Sun) -> tuple[np.ndarray, np.ndarray]:
    """Ground points whose ray towards the sun passes through a box (buildings, vehicles), and
    points right under a box (contact shadow). Boxes are (x0, x1, z0, z1, height)."""
    s = sun.direction
    shape = np.broadcast_shapes(x.shape, z.shape)
    cast = np.zeros(shape, bool)
    contact = np.zeros(shape, bool)
    for x0, x1, z0, z1, height in shadows:
        reach = height / max(s[1], 0.15)         # horizontal run of the ray below the box top
        enter, leave = _slab(x, s[0] * reach, x0, x1)
        enter_z, leave_z = _slab(z, s[2] * reach, z0, z1)
        cast |= np.maximum(enter, enter_z) <= np.minimum(leave, leave_z)
        contact |= (x >= x0) & (x <= x1) & (z >= z0) & (z <= z1)
    return cast.astype(np.float32), contact.astype(np.float32)


def _slab(p, d: float, lo: float, hi: float):
    """Parameter interval within [0, 1] where p + t*d lies in [lo, hi] (empty: enter > leave)."""
    if abs(d) < 1e-6:
        inside = (p >= lo) & (p <= hi)
        return np.where(inside, 0.0, 2.0), np.where(inside, 1.0, -1.0)
    t0, t1 = (lo - p) / d, (hi - p) / d
    return np.maximum(np.minimum(t0, t1), 0.0), np.minimum(np.maximum(t0, t1), 1.0)


# ---------------------------------------------------------------------------------------------
# Materials: functions of plane coordinates (u along the plane, v height above the ground)


def facade(look: dict, shade: float) -> Material:
    """Wall with a window grid per floor, a shop front at street level and a cornice."""
    wall, glass, trim = look['wall'] * shade, look['glass'], look['trim'] * shade

    def material(u, v):
        floors = (v >= look['ground']) & (v < look['height'] - 0.7)
        in_bay = stripes(u, look['spacing'], look['window'] / look['spacing'], look['phase'])
        in_row = stripes(v - look['ground'], look['floor'], 0.5, -0.9)
        window = floors & in_bay & in_row
        frame = floors & stripes(u, look['spacing'], (look['window'] + 0.3) / look['spacing'],
                                 look['phase'] - 0.15) & stripes(v - look['ground'],
                                                                 look['floor'], 0.6, -0.75)
        reflection = 0.7 + 0.6 * hash_noise(u - look['phase'], v - look['ground'],
                                            1.0 / look['spacing'])[..., None]
        shop = (v < look['ground'] - 0.6) & (v > 0.3) & stripes(u, 4.0, 0.7, look['phase'])
        layers = Layers(u, v).add(True, wall * (0.94 + 0.12 * hash_noise(u, v, 3.0))[..., None])
        layers.add(v < look['ground'], look['base'] * shade).add(frame, trim)
        layers.add(window, glass * reflection).add(shop, glass * 0.8)
        layers.add(v >= look['height'] - 0.5, trim * 0.85)
        layers.add(v >= look['height'], look['roof'] * shade)
        return layers.out()
    return material


def skyline(look: dict) -> Material:
    """Distant buildings of different heights with faint window rows."""
    def material(u, v):
        height = look['heights'][np.clip((u / look['block']).astype(int) + look['offset'], 0,
                                         len(look['heights']) - 1)]
        tint = look['tints'][np.clip((u / look['block']).astype(int) + look['offset'], 0,
                                     len(look['tints']) - 1)]
        windows = stripes(v, 3.2, 0.45) & stripes(u, 2.6, 0.5) & (v > 3)
        rgb = tint * (1 - 0.25 * windows[..., None])
        return Layers(u, v).add(v < height, rgb, ID['building']).out()
    return material


def treeline(colour: np.ndarray, height: float, phase: float) -> Material:
    """A distant band of trees with a bumpy top."""
    def material(u, v):
        top = height + 1.5 * np.sin(u * 0.35 + phase) + 1.0 * np.sin(u * 1.1 + 2 * phase)
        rgb = colour * (0.8 + 0.3 * hash_noise(u, v, 1.5))[..., None]
        return Layers(u, v).add(v < top, rgb, ID['vegetation']).out()
    return material


def wall(look: dict, shade: float) -> Material:
    """Masonry blocks with mortar joints and a lighter coping on top."""
    def material(u, v):
        block = look['colour'] * shade * (0.88 + 0.24 * hash_noise(u, v, 2.5))[..., None]
        joints = stripes(v, 0.3, 0.12) | stripes(u + 0.3 * (np.floor(v / 0.3) % 2), 0.6, 0.06)
        layers = Layers(u, v).add(True, block, ID['wall'])
        layers.add(joints, look['colour'] * shade * 0.8, ID['wall'])
        return layers.add(v > look['height'] - 0.15, look['coping'] * shade, ID['wall']).out()
    return material


def fence(look: dict, shade: float) -> Material:
    """Wooden boards or mesh panels between posts."""
    def material(u, v):
        colour = look['colour'] * shade
        posts = stripes(u, 2.5, 0.08)
        if look['kind'] == 'boards':
            seams = stripes(u, 0.18, 0.2)
            top = look['height'] - 0.1 * (np.abs(np.mod(u, 0.18) - 0.09) > 0.05)
        else:
            seams = stripes(u + v, 0.2, 0.25) | stripes(u - v, 0.2, 0.25)
            top = look['height']
        layers = Layers(u, v).add(v < top, colour, ID['fence'])
        layers.add((v < top) & seams, colour * 0.7, ID['fence'])
        return layers.add((v < look['height']) & posts, colour * 0.55, ID['fence']).out()
    return material


def hedge(colour: np.ndarray, height: float, phase: float) -> Material:
    def material(u, v):
        top = height + 0.12 * np.sin(u * 2.3 + phase)
        rgb = colour * (0.7 + 0.5 * hash_noise(u, v, 6.0))[..., None]
        return Layers(u, v).add(v < top, rgb, ID['vegetation']).out()
    return material


def tree(look: dict, shade: float) -> Material:
    """Trunk and a crown of lumpy blobs, lit on the sun side and darker underneath."""
    def material(u, v):
        layers = Layers(u, v)
        layers.add((np.abs(u) < look['trunk'] / 2) & (v < look['base'] + 0.5),
                   look['bark'] * shade, ID['vegetation'])
        leaves = (0.65 + 0.5 * hash_noise(u, v, 5.0))[..., None]
        for cu, cv, r, phase in look['blobs']:
            du, dv = u - cu, v - cv
            theta = np.arctan2(dv, du)
            bumpy = r * (1 + 0.13 * np.sin(5 * theta + phase) + 0.07 * np.sin(11 * theta))
            lit = 0.8 + 0.25 * np.clip(dv / r + look['sun_side'] * du / r, -1, 1)
            layers.add(du ** 2 + dv ** 2 < bumpy ** 2,
                       look['leaves'] * shade * leaves * lit[..., None], ID['vegetation'])
        return layers.out()
    return material


def person(look: dict, shade: float, label: int = ID['person']) -> Material:
    """Head, torso, arms and legs; `stride` opens the legs (seen from the side)."""
    def material(u, v):
        a, b = u / look['height'], v / look['height']
        spread = 0.045 + look['stride'] * np.clip(0.5 - b, 0, None)
        legs = (b < 0.5) & (np.abs(np.abs(a) - spread) < 0.05)
        torso = (b >= 0.47) & (b < 0.82) & (np.abs(a) < 0.125)
        arms = (b >= 0.5) & (b < 0.81) & (np.abs(a) < 0.17)
        neck = (b >= 0.8) & (b < 0.87) & (np.abs(a) < 0.04)
        head = (a / 0.065) ** 2 + ((b - 0.93) / 0.07) ** 2 < 1
        layers = Layers(u, v).add(legs, look['bottom'] * shade, label)
        layers.add(legs & (b < 0.04), look['shoes'], label)
        layers.add(arms, look['top'] * shade * 0.85, label).add(torso, look['top'] * shade, label)
        layers.add(neck | head, look['skin'] * shade, label)
        return layers.add(head & (b > 0.95), look['hair'], label).out()
    return material


def rider_rear(look: dict, shade: float) -> Material:
    """Cyclist seen from behind: a narrow wheel under a seated person."""
    body = person(dict(look, height=1.75, stride=0.1), shade, ID['rider'])

    def material(u, v):
        layers = Layers(u, v)
        rgb, label = body(u, v - 0.1)            # seated: hips at saddle height
        np.copyto(layers.rgb, rgb, where=(label >= 0)[..., None])
        layers.label[:] = np.where(v > 0.3, label, TRANSPARENT)
        wheel = (np.abs(u) < look['tyre']) & (v < 0.72)
        layers.add(wheel, np.float32([0.08, 0.08, 0.09]), ID['bicycle'])
        layers.add((np.abs(v - 1.0) < 0.04) & (np.abs(u) < 0.28), look['frame'], ID['bicycle'])
        return layers.out()
    return material


def bicycle_side(look: dict, shade: float, rider: dict | None) -> Material:
    """Side view of a bicycle (wheels as discs so they stay visible at low resolution), with
    an optional rider sitting on it."""
    def material(u, v):
        layers = Layers(u, v)
        if rider is not None:
            lean = np.clip((v - 0.9) / 0.6, 0, 1) * 0.3
            torso = (v >= 0.9) & (v < 1.5) & (np.abs(u - lean) < 0.16)
            head = ((u - 0.35) / 0.12) ** 2 + ((v - 1.62) / 0.13) ** 2 < 1
            leg = (v >= 0.3) & (v < 0.95) & (np.abs(u + 0.05 - 0.2 * (v - 0.3)) < 0.09)
            arm = (v >= 1.1) & (v < 1.4) & (np.abs(u - 0.45 + 0.5 * (v - 1.1)) < 0.07)
            layers.add(leg, rider['bottom'] * shade, ID['rider'])
            layers.add(torso | arm, rider['top'] * shade, ID['rider'])
            layers.add(head, rider['skin'] * shade, ID['rider'])
        tube = max(look['tyre'], 0.05)
        for centre in (-0.55, 0.55):
            r2 = (u - centre) ** 2 + (v - 0.34) ** 2
            layers.add(r2 < 0.34 ** 2, look['spokes'], ID['bicycle'])
            layers.add((r2 < 0.34 ** 2) & (r2 > (0.34 - tube) ** 2), look['tyre_colour'],
                       ID['bicycle'])
        frame = (np.abs(v - 0.7) < tube) & (np.abs(u) < 0.45)
        frame |= (np.abs(u + 0.55 - (v - 0.34) * 0.55) < tube) & (v > 0.34) & (v < 0.9)
        frame |= (np.abs(u - 0.45) < tube) & (v > 0.34) & (v < 1.0)
        return layers.add(frame, look['frame'] * shade, ID['bicycle']).out()
    return material


def street_lamp(look: dict, reach: float) -> Material:
    """Pole with an arm reaching over the road (reach < 0: to the left) and a lamp head."""
    def material(u, v):
        arm_u = np.clip(u / reach, 0, 1) if reach else np.zeros_like(u)
        layers = Layers(u, v)
        layers.add((np.abs(u) < look['width'] / 2) & (v < look['height']), look['colour'],
                   ID['pole'])
        arm = (arm_u > 0) & (arm_u < 1) & (np.abs(v - look['height']) < look['thick'])
        layers.add(arm, look['colour'], ID['pole'])
        head = (np.abs(u - reach) < 0.4) & (v < look['height'] + 0.05) & (
            v > look['height'] - 0.3)
        return layers.add(head, look['colour'] * 0.7, ID['pole']).out()
    return material


def sign(look: dict) -> Material:
    """Sign plate (round, triangular or rectangular; or its grey back) on a post."""
    def material(u, v):
        du, dv = u / look['size'], (v - look['centre']) / look['size']
        shape = look['shape']
        if shape == 'circle':
            plate, border = du ** 2 + dv ** 2 < 0.25, du ** 2 + dv ** 2 > 0.14
        elif shape == 'triangle':
            plate = (dv > -0.45) & (np.abs(du) < (0.45 - dv) * 0.6)
            border = ~((dv > -0.3) & (np.abs(du) < (0.28 - dv) * 0.55))
        else:
            plate = (np.abs(du) < 0.5 * look['aspect']) & (np.abs(dv) < 0.5)
            border = (np.abs(du) > 0.5 * look['aspect'] - 0.08) | (np.abs(dv) > 0.42)
        layers = Layers(u, v).add((np.abs(u) < look['post'] / 2) & (v < look['centre']),
                                  look['post_colour'], ID['pole'])
        layers.add(plate, look['face'], ID['traffic sign'])
        return layers.add(plate & border, look['border'], ID['traffic sign']).out()
    return material


def traffic_light(look: dict) -> Material:
    """Post (if any) and a housing with three lamps, one of them lit."""
    def material(u, v):
        top, half_w = look['top'], look['box_width'] / 2
        housing = (np.abs(u - look['box_u']) < half_w) & (v > top - 3.2 * half_w) & (v < top)
        layers = Layers(u, v)
        layers.add((np.abs(u) < look['post'] / 2) & (v < top), look['post_colour'], ID['pole'])
        layers.add(housing, look['housing'], ID['traffic light'])
        for k, colour in enumerate(((1.0, 0.1, 0.1), (1.0, 0.75, 0.1), (0.1, 1.0, 0.4))):
            centre = top - half_w * (0.55 + 1.05 * k)
            lamp = (u - look['box_u']) ** 2 + (v - centre) ** 2 < (0.7 * half_w) ** 2
            glow = 1.0 if k == look['lit'] else 0.25
            layers.add(lamp, np.float32(colour) * glow, ID['traffic light'])
        return layers.out()
    return material


def vehicle_end(look: dict, facing: str) -> Material:
    """Rear or front of a car, truck or bus: body, glass, lights, bumper, wheels."""
    def material(u, v):
        a = np.abs(u) / (look['width'] / 2)
        body = look['body']
        layers = Layers(u, v)
        layers.add(v >= look['clearance'], body, look['label'])
        taper = look['taper'] * (v - look['belt']) / look['cabin']
        upper = (v >= look['belt']) & (a > 1 - taper)
        layers.label[np.broadcast_to(upper, layers.label.shape)] = TRANSPARENT
        glass_top = look['height'] - 0.1 if look['kind'] == 'car' else look['height'] - 0.35
        glass_rows = (v >= look['belt'] + 0.05) & (v < glass_top)
        if facing == 'rear' and look['kind'] != 'car':
            glass_rows &= v > look['height'] - 1.2
        layers.add(glass_rows & (a < 0.86 - taper),
                   look['glass'], look['label'])
        layers.add((v >= 0.2) & (v < 0.42), body * 0.45, look['label'])
        layers.add((v < 0.55) & (a > 0.75), np.float32([0.05, 0.05, 0.06]), look['label'])
        lamp_v = look['lamp_height']
        lamps = (np.abs(v - lamp_v) < 0.08) & (a > 0.62) & (a < 0.92)
        lamp_colour = (0.85, 0.1, 0.08) if facing == 'rear' else (0.95, 0.95, 0.85)
        layers.add(lamps, np.float32(lamp_colour), look['label'])
        layers.add((np.abs(v - 0.48) < 0.06) & (a < 0.2), np.float32([0.9, 0.9, 0.85]),
                   look['label'])
        return layers.out()
    return material


def vehicle_side(look: dict, front_far: bool) -> Material:
    """Side of a car, truck or bus: body, windows with pillars, wheels."""
    def material(u, v):
        s = u / look['length']
        if front_far:
            s = 1 - s
        layers = Layers(u, v).add((v >= look['clearance']) & (v < look['belt']), look['body'],
                                  look['label'])
        slope = look['taper'] * (v - look['belt']) / look['cabin']
        cabin = (v >= look['belt']) & (s > look['cabin_from'] + 0.5 * slope)
        cabin &= s < look['cabin_to'] - 0.6 * slope
        layers.add(cabin, look['body'], look['label'])
        windows = cabin & (v > look['belt'] + 0.08) & (v < look['height'] - 0.12)
        windows &= ~stripes(u, look['pillar'], 0.1)
        layers.add(windows, look['glass'], look['label'])
        for wheel_s in look['wheels']:
            r2 = (s - wheel_s) ** 2 * look['length'] ** 2 + (v - look['wheel']) ** 2
            layers.add(r2 < look['wheel'] ** 2, np.float32([0.05, 0.05, 0.06]), look['label'])
            layers.add(r2 < (0.5 * look['wheel']) ** 2, np.float32([0.5, 0.5, 0.52]),
                       look['label'])
        return layers.out()
    return material
