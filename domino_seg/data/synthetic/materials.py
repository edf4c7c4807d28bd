"""Colours, patterns, noise and materials: how a surface looks, independent of where it stands.

A *material* maps world coordinates ``(u, v)`` on a plane (u along the plane, v height above the
ground) to colours and Cityscapes trainIds, so details such as windows, wheels and tiles stay in
perspective at any resolution. The primitives (`hsv`, `stripes`, the two noises) are shared with
the ground, the scene finish and the weather renderer, which is why they live here.
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .geometry import ID, TRANSPARENT, Material


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


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int | None = None, *,
                 across: int | None = None) -> np.ndarray:
    """Zero-mean, unit-ish noise: a coarse grid of normal samples, cubically interpolated. Blobs
    are about `cell` pixels wide, or, with `across` instead, there are about `across` blobs
    across the width whatever the resolution (the weather, which also sees real images)."""
    if (cell is None) == (across is None):
        raise TypeError('smooth_noise takes exactly one of cell and across')
    h, w = shape
    rows, cols = (h // cell, w // cell) if across is None else (max(across * h // w, 1), across)
    small = rng.standard_normal((rows + 2, cols + 2)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def pick(rng: np.random.Generator, options: list):
    """One of `options` (lists of tuples or arrays, which rng.choice would reshape)."""
    return options[int(rng.integers(len(options)))]


def jitter_hsv(rng: np.random.Generator, h: float, s: float, v: float) -> np.ndarray:
    """A colour near (h, s, v), so that no two paint jobs are identical."""
    return hsv(h + rng.uniform(-0.02, 0.02), s * rng.uniform(0.8, 1.1), v * rng.uniform(0.85, 1.1))


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
