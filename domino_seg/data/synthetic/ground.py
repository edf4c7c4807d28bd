"""Sky and ground: the backdrop every scene paints before its objects.

The ground is rendered per pixel from its world coordinates (road, markings, kerbs, sidewalks,
terrain), textured and shadowed by the boxes (buildings, vehicles) the objects register.
"""
from __future__ import annotations

import math

import numpy as np

from .geometry import ID, Canvas, Sun
from .layout import Street
from .materials import hash_noise, hsv, smooth_noise, stripes


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
