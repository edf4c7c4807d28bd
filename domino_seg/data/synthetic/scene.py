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
from dataclasses import dataclass
from typing import Callable

import cv2
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


@dataclass
class Scene:
    image: np.ndarray      # H x W x 3 uint8 RGB, clear daylight
    label: np.ndarray      # H x W uint8 Cityscapes trainIds
    depth: np.ndarray      # H x W float32 metres along the optical axis; sky = SKY_DEPTH
    lights: list[Light]    # (x, y, radius, rgb) in pixels: lamps, vehicle/traffic lights, windows
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
    left, right = x - width / 2, x + width / 2
    facing_us = right if right < 0 else left if left > 0 else None   # None: straight ahead
    if facing_us is not None:
        side_plane(canvas, facing_us, z, z + length, 0.0, height, lambda u, v: side(u - z, v))
    front_plane(canvas, z, left, right, 0.0, height, lambda u, v: near(u - x, v))


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
    lanes: int
    parking: tuple[bool, bool]     # a parking strip along the (left, right) kerb
    divider: float | None          # x of the two-way centre line; None for a one-way street
    verge: tuple[float, float]     # grass strip between kerb and sidewalk, (left, right)
    sidewalk: tuple[float, float]
    styles: tuple[str, str]        # 'urban', 'suburban' or 'park' for (left, right)
    crossing: tuple[float, float] | None   # z range of a cross street
    crosswalk: float | None        # z where a zebra crossing starts
    end: float                     # z where the street's buildings end
    colours: dict                  # base colours of the ground surfaces

    def kerb(self, side: int) -> float:
        return self.road_left if side < 0 else self.road_right

    def lot(self, side: int) -> float:
        """Lateral position where private land begins (outer edge of the sidewalk)."""
        i = 0 if side < 0 else 1
        return self.kerb(side) + side * (self.verge[i] + self.sidewalk[i])

    def style(self, side: int) -> str:
        return self.styles[0 if side < 0 else 1]

    def crossing_at(self, z0: float, z1: float) -> bool:
        """Whether [z0, z1] overlaps the cross street or the sidewalks at its corners."""
        return (self.crossing is not None and z1 > self.crossing[0] - 2.5
                and z0 < self.crossing[1] + 2.5)

    def lane_centres(self) -> list[float]:
        first = self.road_left + 2.2 * self.parking[0] + self.lane_width / 2
        return [first + k * self.lane_width for k in range(self.lanes)]


def make_camera(height: int, width: int, rng: np.random.Generator) -> Camera:
    focal = 1.105 * width * rng.uniform(0.9, 1.1)        # Cityscapes: 2262 px at 2048 wide
    return Camera(height=height, width=width, focal=focal,
                  horizon=height * rng.uniform(0.36, 0.5),
                  centre=width * (0.5 + rng.uniform(-0.12, 0.12)),
                  elevation=rng.uniform(1.2, 1.8))


def make_sun(rng: np.random.Generator) -> Sun:
    return Sun(azimuth=rng.uniform(-math.pi, math.pi), elevation=rng.uniform(0.25, 1.1),
               ambient=rng.uniform(0.55, 0.7), direct=rng.uniform(0.25, 0.65))


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
        rng.uniform(10, 35) if rng.random() < 0.8 else None)
    return Street(
        road_left=road_left, road_right=road_right, lane_width=lane_width, lanes=lanes,
        parking=tuple(parking),
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
        'zebra': hsv(0, 0, 0.9),
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
    overhead = sun.direct * max(float(sun.direction[1]), 0.0)
    rgb *= (sun.ambient * (1 - 0.35 * contact) + overhead * (1 - sun_in))[..., None]
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
        corner = corner & ~road & ((x < street.lot(-1)) | (x > street.lot(1)))
        rgb[corner] = col['sidewalk']
        label[corner] = ID['sidewalk']
    rgb[road] = col['road']
    label[road] = ID['road']
    lines, crossing = _markings(street, x, z, pixel)
    rgb[road & lines] = col['marking']
    rgb[road & crossing] = col['zebra']
    return label, rgb


def _markings(street: Street, x, z, pixel):
    """(lane, edge and divider lines; zebra crossing and stop line) as masks. Markings stay
    `road` in the labels."""
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
    zebra = np.zeros_like(marks)
    if street.crosswalk is not None:
        zebra = (z >= street.crosswalk) & (z <= street.crosswalk + 3.5) & stripes(x, 1.0, 0.5)
        zebra |= (z >= street.crosswalk - 1.3) & (z <= street.crosswalk - 0.8)   # stop line
    return marks, zebra


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


def facade(look: dict, shade: float, gable: float = 0.0) -> Material:
    """Wall with a window grid per floor, a shop front at street level, a cornice and a roof
    (a band on the eaves side; a gable of half-width `gable` on the end facing the camera)."""
    building = ID['building']

    def material(u, v):
        floors = (v >= look['ground']) & (v < look['height'] - 0.7)
        bay = stripes(u, look['spacing'], look['window'] / look['spacing'], look['phase'])
        bay_frame = stripes(u, look['spacing'], (look['window'] + 0.3) / look['spacing'],
                            look['phase'] - 0.15)
        storey = v - look['ground']
        window = floors & bay & stripes(storey, look['floor'], 0.5, 0.9)
        frame = floors & bay_frame & stripes(storey, look['floor'], 0.6, 0.75)
        reflection = 0.7 + 0.6 * hash_noise(u - look['phase'], storey, 1.0 / look['spacing'])
        shop = (v < look['ground'] - 0.6) & (v > 0.3) & stripes(u, 4.0, 0.7, look['phase'])
        grime = 0.94 + 0.12 * hash_noise(u, v, 3.0)
        layers = Layers(u, v).add(True, look['wall'] * shade * grime[..., None], building)
        layers.add(v < look['ground'], look['base'] * shade, building)
        layers.add(frame, look['trim'] * shade, building)
        layers.add(window, look['glass'] * reflection[..., None], building)
        layers.add(shop, look['glass'] * 0.8, building)
        layers.add(v >= look['height'] - 0.5, look['trim'] * shade * 0.85, building)
        layers.add(v >= look['height'], look['roof'] * shade, building)
        if gable:
            above = v - look['height'] > look['roof_height'] * (1 - np.abs(u) / gable)
            layers.label[np.broadcast_to(above, layers.label.shape)] = TRANSPARENT
        return layers.out()
    return material


def skyline(heights: np.ndarray, tints: np.ndarray, block: float) -> Material:
    """Distant buildings, one per `block` metres of u (from 0), with faint window rows."""
    def material(u, v):
        index = np.clip((u / block).astype(int), 0, len(heights) - 1)
        windows = stripes(v, 3.2, 0.45) & stripes(u, 2.6, 0.5) & (v > 3)
        rgb = tints[index] * (1 - 0.25 * windows[..., None])
        return Layers(u, v).add(v < heights[index], rgb, ID['building']).out()
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
    """Clipped bushes with a slightly wavy top."""
    def material(u, v):
        top = height + 0.12 * np.sin(u * 2.3 + phase)
        rgb = colour * (0.7 + 0.5 * hash_noise(u, v, 6.0))[..., None]
        return Layers(u, v).add(v < top, rgb, ID['vegetation']).out()
    return material


def tree(look: dict, shade: float) -> Material:
    """Trunk and a crown of overlapping blobs with ragged leafy edges, lit on the sun side and
    darker underneath."""
    def material(u, v):
        layers = Layers(u, v)
        layers.add((np.abs(u) < look['trunk'] / 2) & (v < look['base'] + 0.5),
                   look['bark'] * shade, ID['vegetation'])
        leaves = hash_noise(u, v, 5.0)
        crown = np.zeros(layers.label.shape, bool)
        for cu, cv, r in look['blobs']:
            crown |= (u - cu) ** 2 + (v - cv) ** 2 < r * r * (0.8 + 0.35 * leaves)
        radius = look['radius']
        lit = 0.8 + 0.25 * np.clip((v - look['centre']) / radius + look['sun_side'] * u / radius,
                                   -1, 1)
        colour = look['leaves'] * shade * ((0.65 + 0.5 * leaves) * lit)[..., None]
        return layers.add(crown, colour, ID['vegetation']).out()
    return material


def person(look: dict, shade: float) -> Material:
    """Head, torso, arms and legs; `stride` opens the legs (seen from the side)."""
    label = ID['person']

    def material(u, v):
        a, b = u / look['height'], v / look['height']
        spread = 0.05 + look['stride'] * np.clip(0.5 - b, 0, None)
        legs = (b < 0.5) & (np.abs(np.abs(a) - spread) < 0.055)
        torso = (b >= 0.47) & (b < 0.82) & (np.abs(a) < 0.135)
        arms = (b >= 0.5) & (b < 0.81) & (np.abs(a) < 0.185)
        neck = (b >= 0.8) & (b < 0.87) & (np.abs(a) < 0.04)
        head = (a / 0.065) ** 2 + ((b - 0.93) / 0.07) ** 2 < 1
        layers = Layers(u, v).add(legs, look['bottom'] * shade, label)
        layers.add(legs & (b < 0.04), look['shoes'], label)
        layers.add(arms, look['top'] * shade * 0.85, label).add(torso, look['top'] * shade, label)
        layers.add(neck | head, look['skin'] * shade, label)
        return layers.add(head & (b > 0.95), look['hair'], label).out()
    return material


def street_lamp(look: dict, reach: float) -> Material:
    """Pole with an arm reaching over the road (reach < 0: to the left) and a lamp head."""
    def material(u, v):
        arm_u = u / reach
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
    """Post (if any) and a housing with three lamps, one of them lit, on a bordered
    backplate."""
    def material(u, v):
        top, half_w = look['top'], look['box_width'] / 2
        du = np.abs(u - look['box_u'])
        housing = (du < half_w) & (v > top - 3.2 * half_w) & (v < top)
        plate = (du < 1.4 * half_w) & (v > top - 3.6 * half_w) & (v < top + 0.3 * half_w)
        layers = Layers(u, v)
        layers.add((np.abs(u) < look['post'] / 2) & (v < top), look['post_colour'], ID['pole'])
        layers.add(plate, look['plate'], ID['traffic light'])
        layers.add(housing, look['housing'], ID['traffic light'])
        for k, colour in enumerate(((1.0, 0.1, 0.1), (1.0, 0.75, 0.1), (0.1, 1.0, 0.4))):
            centre = top - half_w * (0.55 + 1.05 * k)
            lamp = (u - look['box_u']) ** 2 + (v - centre) ** 2 < (0.7 * half_w) ** 2
            glow = 1.0 if k == look['lit'] else 0.25
            layers.add(lamp, np.float32(colour) * glow, ID['traffic light'])
        return layers.out()
    return material


def vehicle_end(look: dict, facing: str, shade: float) -> Material:
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
        layers.add(glass_rows & (a < 0.86 - taper), look['glass'], look['label'])
        layers.add((v >= 0.2) & (v < 0.42), body * 0.45, look['label'])
        layers.add((v < 0.55) & (a > 0.75), np.float32([0.05, 0.05, 0.06]), look['label'])
        lamp_v = look['lamp_height']
        lamps = (np.abs(v - lamp_v) < 0.08) & (a > 0.62) & (a < 0.92)
        lamp_colour = (0.85, 0.1, 0.08) if facing == 'rear' else (0.95, 0.95, 0.85)
        layers.add(lamps, np.float32(lamp_colour), look['label'])
        layers.add((np.abs(v - 0.48) < 0.06) & (a < 0.2), np.float32([0.9, 0.9, 0.85]),
                   look['label'])
        return layers.rgb * shade, layers.label
    return material


def vehicle_side(look: dict, front_far: bool, shade: float) -> Material:
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
        return layers.rgb * shade, layers.label
    return material


# ---------------------------------------------------------------------------------------------
# Scene composition: each function returns (distance, painter) items


Item = tuple[float, Callable[[Canvas], None]]
PALETTE = {   # vehicle paints (hsv), roughly by how common they are
    'car': [(0, 0, 0.92), (0, 0, 0.08), (0, 0, 0.6), (0, 0, 0.4), (0.0, 0.8, 0.6),
            (0.6, 0.7, 0.45), (0.6, 0.5, 0.25), (0.33, 0.5, 0.3), (0.1, 0.3, 0.7)],
    'bus': [(0.0, 0.85, 0.7), (0.13, 0.85, 0.85), (0, 0, 0.9), (0.58, 0.7, 0.55),
            (0.35, 0.6, 0.5)],
    'truck': [(0, 0, 0.88), (0, 0, 0.7), (0.6, 0.6, 0.5), (0.02, 0.7, 0.6), (0.1, 0.7, 0.8)],
}
BUILDING_STYLES = {   # lengths, setbacks, heights (m), chance of a gap, gap lengths
    'urban': dict(length=(8, 28), setback=(0, 3), height=(8, 30), gap_chance=0.2,
                  gap=(2, 8)),
    'suburban': dict(length=(8, 14), setback=(3, 9), height=(5, 8), gap_chance=0.7,
                     gap=(3, 12)),
    'park': dict(length=(15, 35), setback=(20, 40), height=(10, 25), gap_chance=0.6,
                 gap=(10, 30)),
}


def pick(rng: np.random.Generator, options: list):
    """One of `options` (lists of tuples or arrays, which rng.choice would reshape)."""
    return options[int(rng.integers(len(options)))]


def jitter_hsv(rng: np.random.Generator, h: float, s: float, v: float) -> np.ndarray:
    """A colour near (h, s, v), so that no two paint jobs are identical."""
    return hsv(h + rng.uniform(-0.02, 0.02), s * rng.uniform(0.8, 1.1), v * rng.uniform(0.85, 1.1))


def building_look(rng: np.random.Generator, style: str) -> dict:
    """Random facade: colour family, storeys and window grid, a shop front (urban) or a
    pitched roof (suburban houses)."""
    kind = rng.random()
    if kind < 0.5:          # warm plaster, ochre, brick
        wall = hsv(rng.uniform(0.0, 0.13), rng.uniform(0.15, 0.55), rng.uniform(0.45, 0.85))
    elif kind < 0.8:        # white, grey, concrete
        wall = hsv(rng.uniform(0, 1), rng.uniform(0, 0.07), rng.uniform(0.4, 0.9))
    else:                   # pastel
        wall = hsv(rng.uniform(0.25, 0.65), rng.uniform(0.1, 0.3), rng.uniform(0.55, 0.85))
    limits = BUILDING_STYLES[style]
    urban = style != 'suburban'
    window = rng.uniform(0.8, 1.5)
    trim = np.clip(wall * pick(rng, [0.7, 1.25]), 0, 1)
    return dict(
        wall=wall, trim=trim, height=rng.uniform(*limits['height']),
        floor=rng.uniform(3.0, 3.6), ground=rng.uniform(3.5, 4.5) if urban else 0.0,
        window=window, spacing=window + rng.uniform(0.8, 2.0), phase=rng.uniform(0, 3),
        glass=hsv(rng.uniform(0.55, 0.62), rng.uniform(0.1, 0.35), rng.uniform(0.15, 0.35)),
        base=hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.15, 0.4)) if urban
        else wall,
        roof=hsv(rng.uniform(0.0, 0.06), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.45)),
        roof_height=0.0 if urban else rng.uniform(1.5, 3.0), lit=rng.uniform(0.1, 0.4))


def buildings(street: Street, side: int, sun: Sun, shadows: list,
              rng: np.random.Generator) -> list[Item]:
    """Blocks along one side, skipping the cross street; each casts a shadow on the ground."""
    style = street.style(side)
    limits = BUILDING_STYLES[style]
    shades = (sun.shade((-side, 0, 0)), sun.shade((0, 0, -1)))
    items, z = [], rng.uniform(-6, 3)
    while z < street.end:
        length = rng.uniform(*limits['length'])
        if street.crossing_at(z, z + length):
            corner = street.crossing[0] - 2.5
            if corner - z < 4:
                z = street.crossing[1] + 2.5
                continue
            length = corner - z
        look = building_look(rng, style)
        face = street.lot(side) + side * rng.uniform(*limits['setback'])
        width = rng.uniform(10, 25)
        centre = face + side * width / 2
        lit = _lit_windows(face, z, length, look, rng)
        items.append((z, _painter(draw_building, x=centre, z=z, width=width, length=length,
                                  look=look, shades=shades, lit_windows=lit)))
        top = look['height'] + look['roof_height'] / 2
        shadows.append((centre - width / 2, centre + width / 2, z, z + length, top))
        z += length
        if rng.random() < limits['gap_chance']:
            z += rng.uniform(*limits['gap'])
    return items


def _painter(function, **kwargs) -> Callable[[Canvas], None]:
    return lambda canvas: function(canvas, **kwargs)


def _lit_windows(face: float, z: float, length: float, look: dict,
                 rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """World positions of the windows on the road-facing side that are lit at night."""
    along = np.arange(look['phase'] + look['window'] / 2, length, look['spacing'])
    heights = np.arange(look['ground'] + 0.9 + 0.25 * look['floor'], look['height'] - 1.2,
                        look['floor'])
    lit_along, lit_heights = np.nonzero(rng.random((len(along), len(heights))) < look['lit'])
    return [(face, float(heights[j]), z + float(along[i])) for i, j in zip(lit_along, lit_heights)]


def draw_building(canvas: Canvas, x: float, z: float, width: float, length: float, look: dict,
                  shades: tuple[float, float], lit_windows: list) -> None:
    height = look['height'] + look['roof_height']
    box(canvas, x, z, width, height, length, near=facade(look, shades[1], gable=width / 2),
        side=facade(look, shades[0]))
    for wx, wy, wz in lit_windows:
        if wz > 0.5:
            canvas.add_light(wx, wy, wz, 0.3 * look['window'], (170, 130, 70))


def background(street: Street, rng: np.random.Generator) -> list[Item]:
    """Distant skyline and/or tree line closing the view at the end of the street."""
    z = street.end + rng.uniform(20, 60)
    half = 0.8 * z + 40
    haze = hsv(rng.uniform(0.55, 0.62), 0.1, 0.75)
    items = []
    if rng.random() < 0.75:
        count = int(2 * half / 8) + 1
        walls = [hsv(rng.uniform(0, 0.15), rng.uniform(0, 0.4), rng.uniform(0.45, 0.85))
                 for _ in range(count)]
        tints = 0.6 * np.array(walls) + 0.4 * haze
        material = skyline(rng.uniform(8, 40, count), tints, 2 * half / count)
        items.append((z, _painter(front_plane, z=z, x0=-half, x1=half, y0=0, y1=45,
                                  material=lambda u, v: material(u + half, v))))
    if rng.random() < 0.5 or not items:
        green = hsv(rng.uniform(0.22, 0.32), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.4))
        items.append((z - 8, _painter(front_plane, z=z - 8, x0=-half, x1=half, y0=0, y1=20,
                                      material=treeline(green, rng.uniform(5, 12),
                                                        rng.uniform(0, 6)))))
    return items


def boundaries(street: Street, side: int, sun: Sun, rng: np.random.Generator) -> list[Item]:
    """Walls, fences and hedges along the property line behind the sidewalk."""
    chance = {'urban': 0.5, 'suburban': 0.9, 'park': 0.9}[street.style(side)]
    shade = sun.shade((-side, 0, 0))
    x = street.lot(side) + side * 0.15
    items, z = [], rng.uniform(0, 8)
    while z < min(street.end, 100):
        length = rng.uniform(6, 30)
        if rng.random() < chance and not street.crossing_at(z, z + length):
            height = rng.uniform(1.0, 2.5)
            kind = pick(rng, ['wall', 'fence', 'hedge'])
            if kind == 'wall':
                colour = pick(rng, [hsv(0.07, 0.45, 0.55), hsv(0.1, 0.1, 0.7), hsv(0, 0, 0.5)])
                material = wall(dict(colour=colour * rng.uniform(0.85, 1.1), height=height,
                                     coping=hsv(0, 0, 0.8)), shade)
            elif kind == 'fence':
                boards = rng.random() < 0.5
                colour = hsv(0.07, 0.5, 0.45) if boards else hsv(0.4, 0.25, 0.35)
                material = fence(dict(kind='boards' if boards else 'mesh', height=height,
                                      colour=colour * rng.uniform(0.8, 1.2)), shade)
            else:
                green = hsv(rng.uniform(0.23, 0.33), rng.uniform(0.5, 0.75), rng.uniform(0.2, 0.35))
                material = hedge(green * shade, height, rng.uniform(0, 6))
            items.append((z, _painter(side_plane, x=x, z0=z, z1=z + length, y0=0,
                                      y1=height + 0.2, material=material)))
        z += length + rng.uniform(0, 10)
    return items


def trees(street: Street, side: int, sun: Sun, rng: np.random.Generator) -> list[Item]:
    """Street trees in the verge or sidewalk, front-yard trees, park trees."""
    i = 0 if side < 0 else 1
    kerb, lot, style = street.kerb(side), street.lot(side), street.style(side)
    spots = []
    if street.verge[i] > 0 or (style == 'urban' and rng.random() < 0.4):
        offset = street.verge[i] / 2 if street.verge[i] > 0 else 0.9
        z = rng.uniform(2, 12)
        while z < street.end * 0.8:
            spots.append((kerb + side * offset, z))
            z += rng.uniform(7, 16)
    if style != 'urban':          # front yards, parks
        count, depth = (rng.integers(2, 7), 6) if style == 'suburban' else (rng.integers(6, 15), 25)
        spots += [(lot + side * rng.uniform(1.5, depth), rng.uniform(3, street.end))
                  for _ in range(int(count))]
    shade = sun.ambient + 0.5 * sun.direct
    sun_side = float(np.sign(math.sin(sun.azimuth)))
    items = []
    for x, z in spots:
        if street.crossing_at(z - 1, z + 1) and abs(x) < abs(lot) + 3:
            continue
        look = tree_look(rng, big=style == 'park', sun_side=sun_side)
        items.append((z, _painter(draw_tree, x=x, z=z, look=look, shade=shade)))
    return items


def tree_look(rng: np.random.Generator, big: bool, sun_side: float) -> dict:
    """Random tree: trunk, crown blobs (metres, relative to the trunk) and colours."""
    radius = rng.uniform(2.0, 4.0) if big else rng.uniform(1.4, 3.0)
    base = rng.uniform(1.8, 3.5)
    blobs = [(rng.uniform(-0.6, 0.6) * radius, base + radius * rng.uniform(0.7, 1.6),
              radius * rng.uniform(0.55, 0.9)) for _ in range(int(rng.integers(3, 7)))]
    return dict(trunk=rng.uniform(0.25, 0.5), base=base, blobs=blobs, sun_side=sun_side,
                radius=radius, centre=base + 1.1 * radius,
                leaves=hsv(rng.uniform(0.2, 0.33), rng.uniform(0.45, 0.75),
                           rng.uniform(0.25, 0.45)),
                bark=hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.35)),
                reach=1.6 * radius, top=base + 2.6 * radius)


def draw_tree(canvas: Canvas, x: float, z: float, look: dict, shade: float) -> None:
    trunk = max(look['trunk'], canvas.camera.metres(MIN_THIN_PX, z))
    material = tree(dict(look, trunk=trunk), shade)
    front_plane(canvas, z, x - look['reach'], x + look['reach'], 0, look['top'],
                lambda u, v: material(u - x, v))


def street_lamps(street: Street, side: int, rng: np.random.Generator) -> list[Item]:
    """Lamp posts at regular spacing along the kerb, arms reaching over the road."""
    if rng.random() < 0.3:
        return []
    look = dict(height=rng.uniform(6, 9), colour=pick(rng, [hsv(0, 0, 0.25), hsv(0, 0, 0.55),
                                                           hsv(0.4, 0.3, 0.2)]))
    reach = -side * rng.uniform(0.8, 2.2)
    spacing = rng.uniform(18, 32)
    x = street.kerb(side) + side * 0.5
    items = []
    for z in np.arange(rng.uniform(3, spacing), street.end, spacing):
        if not street.crossing_at(z - 1, z + 1):
            items.append((z, _painter(draw_lamp, x=x, z=float(z), look=look, reach=reach)))
    return items


def draw_lamp(canvas: Canvas, x: float, z: float, look: dict, reach: float) -> None:
    cam = canvas.camera
    look = dict(look, width=max(0.18, cam.metres(MIN_THIN_PX, z)),
                thick=max(0.06, cam.metres(0.8, z)))
    material = street_lamp(look, reach)
    front_plane(canvas, z, x + min(0.0, reach) - 0.5, x + max(0.0, reach) + 0.5, 0,
                look['height'] + 0.2, lambda u, v: material(u - x, v))
    canvas.add_light(x + reach, look['height'] - 0.25, z, 0.35, (255, 210, 140))


SIGN_FACES = {   # shape: [(face, border)] in hsv
    'circle': [((0, 0, 0.95), (0.0, 0.85, 0.75)), ((0.6, 0.85, 0.6), (0.6, 0.85, 0.6)),
               ((0.0, 0.85, 0.75), (0, 0, 0.95))],
    'triangle': [((0, 0, 0.95), (0.0, 0.85, 0.75)), ((0.14, 0.8, 0.9), (0.0, 0.85, 0.75))],
    'rect': [((0.6, 0.85, 0.6), (0, 0, 0.95)), ((0.38, 0.8, 0.45), (0, 0, 0.95)),
             ((0.14, 0.8, 0.9), (0, 0, 0.1))],
}


def signs(street: Street, rng: np.random.Generator) -> list[Item]:
    """Traffic signs on posts by the kerb; some are seen from the back."""
    items = []
    for _ in range(int(rng.integers(2, 6))):
        side = pick(rng, [-1, 1])
        shape = pick(rng, list(SIGN_FACES))
        face, border = (hsv(*c) for c in pick(rng, SIGN_FACES[shape]))
        if rng.random() < 0.2:
            face = border = hsv(0, 0, rng.uniform(0.4, 0.6))
        look = dict(shape=shape, face=face, border=border, size=rng.uniform(0.6, 0.9),
                    centre=rng.uniform(2.2, 2.8), aspect=rng.uniform(1.0, 2.2),
                    post_colour=hsv(0, 0, rng.uniform(0.4, 0.65)))
        x = street.kerb(side) + side * rng.uniform(0.3, 0.8)
        z = rng.uniform(5, 45)
        items.append((z, _painter(draw_sign, x=x, z=z, look=look)))
    return items


def draw_sign(canvas: Canvas, x: float, z: float, look: dict) -> None:
    cam = canvas.camera
    look = dict(look, size=max(look['size'], cam.metres(5.0, z)),
                post=max(0.08, cam.metres(MIN_THIN_PX, z)))
    material = sign(look)
    half = look['size'] * look['aspect']
    front_plane(canvas, z, x - half, x + half, 0, look['centre'] + look['size'],
                lambda u, v: material(u - x, v))


def traffic_lights(street: Street, rng: np.random.Generator) -> list[Item]:
    """Signals at the corners of the cross street or at a zebra crossing, sometimes hanging
    from a mast arm over the road."""
    if street.crossing is not None:
        stops = [street.crossing[0] - 1.5] + [street.crossing[1] + 1.5] * (rng.random() < 0.6)
    elif street.crosswalk is not None:
        stops = [street.crosswalk - 1.5]
    else:
        return []
    housing = pick(rng, [hsv(0, 0, 0.1), hsv(0, 0, 0.2), hsv(0.14, 0.8, 0.75)])
    plate = pick(rng, [hsv(0, 0, 0.9), hsv(0.14, 0.9, 0.9), housing])
    lit = int(rng.integers(3))
    items = []
    for z in stops:
        for side in (-1, 1):
            look = dict(top=rng.uniform(3.0, 4.0), box_u=0.0, housing=housing, plate=plate,
                        lit=lit, post_colour=hsv(0, 0, rng.uniform(0.3, 0.6)), box_width=0.5)
            x = street.kerb(side) + side * 0.6
            items.append((z, _painter(draw_traffic_light, x=x, z=z, look=look)))
    if street.crossing is not None and rng.random() < 0.7:
        side = pick(rng, [-1, 1])
        x, reach = street.kerb(side) + side * 0.6, -side * rng.uniform(3.5, 6.0)
        pole = dict(height=6.3, colour=hsv(0, 0, 0.35))
        items.append((stops[0] + 0.01, _painter(draw_lamp, x=x, z=stops[0], look=pole,
                                                reach=reach)))
        for box_u in (0.55 * reach, 0.95 * reach):
            look = dict(top=6.3, box_u=box_u, housing=housing, plate=plate, lit=lit,
                        post_colour=housing, box_width=0.6, post=0.0)
            items.append((stops[0], _painter(draw_traffic_light, x=x, z=stops[0], look=look)))
    return items


def draw_traffic_light(canvas: Canvas, x: float, z: float, look: dict) -> None:
    cam = canvas.camera
    half = max(look['box_width'], cam.metres(4.5, z)) / 2
    look = dict(look, box_width=2 * half,
                post=look.get('post', max(0.12, cam.metres(MIN_THIN_PX, z))))
    material = traffic_light(look)
    x0, x1 = x + min(0.0, look['box_u']) - 3 * half, x + max(0.0, look['box_u']) + 3 * half
    front_plane(canvas, z, x0, x1, 0, look['top'] + 0.1, lambda u, v: material(u - x, v))
    colour = [(255, 40, 30), (255, 190, 40), (40, 255, 120)][look['lit']]
    canvas.add_light(x + look['box_u'], look['top'] - half * (0.55 + 1.05 * look['lit']), z,
                     0.2, colour)


def vehicle_parts(kind: str, rng: np.random.Generator) -> list[dict]:
    """Box parts of one vehicle, nearest first when seen from behind: a car or bus is one box,
    a truck a cargo box and a cab."""
    paint = jitter_hsv(rng, *pick(rng, PALETTE[kind]))
    glass = hsv(0.6, rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.25))
    label = ID[kind]
    if kind == 'car':
        height = rng.uniform(1.4, 1.6)
        belt = rng.uniform(0.85, 0.95)
        return [dict(kind=kind, label=label, body=paint, glass=glass, width=rng.uniform(1.7, 1.9),
                     height=height, length=rng.uniform(3.9, 4.8), clearance=0.18, belt=belt,
                     cabin=height - belt, taper=0.25, lamp_height=belt - 0.12,
                     cabin_from=rng.uniform(0.18, 0.25), cabin_to=rng.uniform(0.68, 0.78),
                     pillar=1.3, wheels=(0.17, 0.83), wheel=0.32)]
    if kind == 'bus':
        height = rng.uniform(3.0, 3.3)
        return [dict(kind=kind, label=label, body=paint, glass=glass, width=2.55, height=height,
                     length=rng.uniform(10.5, 12.5), clearance=0.3, belt=1.1, cabin=height - 1.1,
                     taper=0.0, lamp_height=0.6, cabin_from=0.0, cabin_to=1.0, pillar=1.4,
                     wheels=(0.2, 0.78), wheel=0.5)]
    cargo_height = rng.uniform(3.2, 3.9)
    cargo = dict(kind=kind, label=label, body=jitter_hsv(rng, *pick(rng, PALETTE['truck'])),
                 glass=glass, width=2.5, height=cargo_height, length=rng.uniform(5, 8),
                 clearance=0.35, belt=cargo_height - 0.01, cabin=0.01, taper=0.0,  # no glass
                 lamp_height=0.8, cabin_from=0.0, cabin_to=0.0, pillar=1.0,
                 wheels=(0.12, 0.85), wheel=0.5)
    cab = dict(kind=kind, label=label, body=paint, glass=glass, width=2.4,
               height=rng.uniform(2.7, 3.0), length=2.2, clearance=0.35, belt=1.5, cabin=1.4,
               taper=0.05, lamp_height=0.8, cabin_from=0.1, cabin_to=0.9, pillar=3.0,
               wheels=(0.5,), wheel=0.5)
    return [cargo, cab]


def vehicles(street: Street, sun: Sun, shadows: list, rng: np.random.Generator) -> list[Item]:
    """Traffic in every lane (oncoming lanes seen from the front) and cars parked at kerbs."""
    placements = []
    for centre in street.lane_centres():
        oncoming = street.divider is not None and centre < street.divider
        z = rng.uniform(9, 30) if abs(centre) < street.lane_width / 2 else rng.uniform(5, 30)
        while z < 90 and rng.random() < 0.7:
            kind = pick(rng, ['car'] * 6 + ['truck', 'bus'])
            x = centre + rng.uniform(-0.3, 0.3)
            placements.append((x, z, 'front' if oncoming else 'rear', kind))
            z += 13 + rng.uniform(3, 35)
    for side, parked in zip((-1, 1), street.parking):
        z = rng.uniform(2, 6)
        while parked and z < 70:
            if rng.random() < 0.65 and not street.crossing_at(z, z + 5):
                facing = pick(rng, ['front', 'rear'])
                placements.append((street.kerb(side) - side * 1.1, z, facing, 'car'))
            z += rng.uniform(5.5, 9)
    items = []
    for x, z, facing, kind in placements:
        parts = vehicle_parts(kind, rng)
        if facing == 'front':
            parts = parts[::-1]
        offsets = np.cumsum([0.0] + [p['length'] + 0.2 for p in parts[:-1]])
        for part, offset in zip(parts, offsets):
            half = part['width'] / 2
            shadows.append((x - half, x + half, z + offset, z + offset + part['length'],
                            part['height']))
        shades = (sun.shade((0, 0, -1)), sun.shade((-np.sign(x), 0, 0)))
        items.append((z, _painter(draw_vehicle, x=x, z=z, parts=parts, offsets=offsets,
                                  facing=facing, shades=shades)))
    return items


def draw_vehicle(canvas: Canvas, x: float, z: float, parts: list[dict], offsets, facing: str,
                 shades: tuple[float, float]) -> None:
    for part, offset in zip(parts, offsets):
        box(canvas, x, z + offset, part['width'], part['height'], part['length'],
            near=vehicle_end(part, facing, shades[0]),
            side=vehicle_side(part, facing == 'rear', shades[1]))
    near = parts[0]
    colour = (255, 30, 20) if facing == 'rear' else (255, 245, 220)
    for lamp_x in (-0.77, 0.77):
        canvas.add_light(x + lamp_x * near['width'] / 2, near['lamp_height'], z,
                         0.08 if facing == 'rear' else 0.12, colour)


def person_look(rng: np.random.Generator, stride: float) -> dict:
    """Random body height, skin, hair and clothes."""
    skin = hsv(rng.uniform(0.04, 0.09), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.9))
    bottom = pick(rng, [hsv(0.6, 0.5, 0.35), hsv(0, 0, 0.15), hsv(0.1, 0.3, 0.55),
                        hsv(0, 0, 0.45)])
    return dict(height=rng.uniform(1.55, 1.95), stride=stride, skin=skin, bottom=bottom,
                top=hsv(rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.15, 0.9)),
                hair=hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.6)),
                shoes=hsv(0, 0, rng.uniform(0.05, 0.3)))


def pedestrians(street: Street, sun: Sun, rng: np.random.Generator) -> list[Item]:
    """People walking along the sidewalks and across the zebra crossing."""
    shade = sun.shade((0, 0, -1))
    spots = []
    for _ in range(int(rng.integers(2, 11))):
        side = pick(rng, [-1, 1])
        i = 0 if side < 0 else 1
        offset = street.verge[i] + rng.uniform(0.3, max(street.sidewalk[i] - 0.3, 0.4))
        spots.append((street.kerb(side) + side * offset, rng.uniform(4, 35), rng.uniform(0, 0.06)))
    if street.crosswalk is not None:
        for _ in range(int(rng.integers(0, 5))):
            spots.append((rng.uniform(street.road_left + 0.5, street.road_right - 0.5),
                          street.crosswalk + rng.uniform(0.5, 3.0), rng.uniform(0.12, 0.3)))
    items = []
    for x, z, stride in spots:
        look = person_look(rng, stride)
        items.append((z, _painter(draw_person, x=x, z=z, look=look, shade=shade)))
    return items


def draw_person(canvas: Canvas, x: float, z: float, look: dict, shade: float) -> None:
    material, half = person(look, shade), 0.21 * look['height']
    front_plane(canvas, z, x - half, x + half, 0, look['height'],
                lambda u, v: material(u - x, v))


# ---------------------------------------------------------------------------------------------
# Rendering


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
