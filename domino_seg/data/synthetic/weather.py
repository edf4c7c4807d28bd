"""Physically motivated weather for clear images with a depth map.

Works on synthetic scenes and on real images with an estimated depth: the label map and the
light sources are optional refinements (wet roads, snow cover and lit lamps need to know where
roads and lamps are). All randomness comes from the `rng` argument, so a result is
reproducible. `severity` in [0, 1] scales the effect; None draws it from `rng` (0.3 to 0.85).
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from domino_seg.conditions import ACDC_CONDITIONS

from .geometry import ID, SKY_DEPTH
from .materials import smooth_noise

CONDITIONS = ('clear',) + ACDC_CONDITIONS   # the order seeds the benchmark's samples
SKY_FROM_DEPTH = SKY_DEPTH / 2    # without labels, pixels at least this far are taken as sky
GROUND = [ID['road'], ID['sidewalk']]
SNOW_CAPPED = [ID[name] for name in ('building', 'wall', 'fence', 'pole', 'vegetation', 'car',
                                     'truck', 'bus')]


def fog(image: np.ndarray, depth: np.ndarray, beta, airlight) -> np.ndarray:
    """Koschmieder's atmospheric scattering: I = J t + A (1 - t) with transmission
    t = exp(-beta d). `image` (J) and `airlight` (A) are in the same units (e.g. 0..1);
    `beta` (1/m) may be a scalar or a per-pixel map."""
    t = np.exp(-np.asarray(beta) * np.asarray(depth))[..., None]
    return image * t + np.asarray(airlight) * (1 - t)


def render_weather(image: np.ndarray, depth: np.ndarray, condition: str,
                   rng: np.random.Generator, label: np.ndarray | None = None,
                   lights: Sequence | None = None, severity: float | None = None) -> np.ndarray:
    """Return `image` (H x W x 3 uint8 RGB, clear daylight) as seen in `condition`.

    depth: H x W metres (sky: large). label: optional Cityscapes trainIds. lights: optional
    (x, y, radius, rgb) light sources in pixels for night; random street lamps when None.
    """
    if condition not in CONDITIONS:
        raise ValueError(f'unknown weather condition {condition!r}; expected one of {CONDITIONS}')
    if condition == 'clear':
        return image.copy()
    if severity is None:
        severity = rng.uniform(0.3, 0.85)
    rgb = image.astype(np.float32) / 255.0
    depth = np.asarray(depth, np.float32)
    sky = label == ID['sky'] if label is not None else depth >= SKY_FROM_DEPTH
    render = RENDERERS[condition]
    out = render(rgb, depth, sky, rng, float(severity), label=label, lights=lights)
    out += rng.normal(0, 0.01, out.shape).astype(np.float32)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _fog(rgb, depth, sky, rng, severity, **_) -> np.ndarray:
    """Dense fog: visibility 150 m (light) down to 30 m (dense), patchy, greyish-white."""
    visibility = (150 - 120 * severity) * rng.uniform(0.85, 1.15)
    beta = 3.912 / visibility                 # contrast threshold 2 % (Koschmieder)
    patchy = beta * (1 + 0.25 * smooth_noise(rng, depth.shape, across=8))
    airlight = rng.uniform(0.72, 0.92) * np.float32([0.97, 0.99, 1.02])
    t = np.exp(-patchy * depth)[..., None]
    softened = rgb * t + cv2.GaussianBlur(rgb, (0, 0), 1.0) * (1 - t)   # forward scattering
    return fog(softened, depth, patchy, airlight)


def _night(rgb, depth, sky, rng, severity, lights=None, **_) -> np.ndarray:
    """Dim bluish ambient light, a dark sky with a faint city glow, lamps that light their
    surroundings and glare with halos, and the sensor noise of high gain."""
    h, w = depth.shape
    albedo = rgb ** 2.2                                              # to linear light
    ambient = rng.uniform(0.04, 0.1) * (1.2 - severity) * np.float32([0.7, 0.85, 1.2])
    if lights is None:
        lights = _random_lamps(rng, h, w)
    emitted = _light_layer(lights, h, w)
    pool = cv2.GaussianBlur(emitted, (0, 0), 0.04 * w) * (0.04 * w) ** 2 * 0.06
    lit = albedo * (ambient + pool)
    down = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]     # city glow low in the sky
    night_sky = np.float32([0.004, 0.006, 0.015]) + down ** 3 * np.float32([0.03, 0.02, 0.01])
    lit = np.where(sky[..., None], night_sky * rng.uniform(0.6, 1.4), lit)
    glare = (emitted + 0.6 * cv2.GaussianBlur(emitted, (0, 0), 0.008 * w + 0.5)
             + 0.25 * cv2.GaussianBlur(emitted, (0, 0), 0.03 * w))
    out = np.clip(lit + glare, 0, 1) ** (1 / 2.2)
    noise_gain = 0.02 + 0.03 * severity
    out += rng.normal(0, noise_gain, out.shape).astype(np.float32) * np.sqrt(out + 0.05)
    return out


def _random_lamps(rng, h: int, w: int) -> list:
    """Street lamps in the upper half when the caller knows no light sources."""
    count = int(rng.integers(3, 8))
    return [(rng.uniform(0, w), rng.uniform(0.1, 0.5) * h, rng.uniform(0.004, 0.012) * w,
             (255, 210, 140)) for _ in range(count)]


def _light_layer(lights, h: int, w: int) -> np.ndarray:
    """Light sources drawn as discs of their colour (linear intensity in 0..1)."""
    layer = np.zeros((h, w, 3), np.float32)
    for x, y, radius, colour in lights:
        intensity = (np.float32(colour) / 255.0) ** 2.2
        centre = (int(round(x * 4)), int(round(y * 4)))
        cv2.circle(layer, centre, max(int(round(radius * 4)), 2), intensity.tolist(), -1,
                   lineType=cv2.LINE_AA, shift=2)
    return layer


def _rain(rgb, depth, sky, rng, severity, label=None, **_) -> np.ndarray:
    """Overcast light and rain haze, a wet reflective road, streaks and drops on the lens."""
    grey = rng.uniform(0.5, 0.65)
    out = fog(rgb, depth, 0.003 + 0.012 * severity, grey)
    out = _desaturate(out, 0.35) * rng.uniform(0.72, 0.85)
    overcast = grey * (1.0 - 0.15 * smooth_noise(rng, depth.shape, across=6))
    out = np.where(sky[..., None], overcast[..., None] * np.float32([0.96, 0.98, 1.0]), out)
    if label is not None:
        out = _wet_ground(out, label, rng, severity)
    wind = rng.normal(0, 12)                                        # degrees from vertical
    for length, amount, width in ((0.03, 1200, 1), (0.08, 250, 2)):   # far thin, near long
        streaks = _streaks(rng, depth.shape, int(amount * severity * depth.size / 32768),
                           length, width, angle=wind)
        out = out + streaks[..., None] * (0.85 - out) * 0.5
    return _lens_drops(out, rng, int(rng.integers(0, 4 + 4 * severity)))


def _wet_ground(rgb, label, rng, severity) -> np.ndarray:
    """Darker wet asphalt mirroring what stands at the end of the road, stronger in puddles."""
    ground = np.isin(label, GROUND)
    h = label.shape[0]
    rows = np.arange(h)[:, None]
    far_edge = np.argmax(ground, axis=0)[None, :]                   # first ground row per column
    mirror = np.clip(2 * far_edge - rows, 0, h - 1)
    reflection = np.take_along_axis(rgb, mirror[..., None].repeat(3, -1), axis=0)
    reflection = cv2.blur(reflection, (1, 7))                       # ripples smear vertically
    puddles = np.clip(smooth_noise(rng, label.shape, across=10) * 1.5 - 0.3, 0, 1)
    gloss = (0.25 + 0.35 * severity) * (0.5 + puddles)
    gloss = np.where(label == ID['road'], gloss, 0.5 * gloss)[..., None]
    wet = rgb * 0.7 * (1 - gloss) + reflection * gloss
    return np.where(ground[..., None], wet, rgb)


def _streaks(rng, shape, count: int, length: float, width: int, angle: float) -> np.ndarray:
    """Rain streaks: random drops smeared along the fall direction (motion blur)."""
    h, w = shape
    drops = np.zeros(shape, np.float32)
    ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
    drops[ys, xs] = rng.uniform(0.5, 1.0, count)
    if width > 1:
        drops = cv2.dilate(drops, np.ones((1, width), np.uint8))
    size = max(int(length * w), 3) | 1
    kernel = np.zeros((size, size), np.float32)
    kernel[:, size // 2] = 1.0
    rotation = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (size, size))
    streaks = cv2.filter2D(drops, -1, kernel / kernel.sum() * size * 0.35)
    return np.clip(streaks, 0, 1)


def _lens_drops(rgb, rng, count: int) -> np.ndarray:
    """Water drops on the windscreen: round spots showing a blurred, brighter image."""
    h, w = rgb.shape[:2]
    if count == 0:
        return rgb
    mask = np.zeros((h, w), np.float32)
    for _ in range(count):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(mask, centre, int(rng.uniform(0.02, 0.05) * w), 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.006 * w + 0.5)[..., None]
    blurred = cv2.GaussianBlur(rgb, (0, 0), 0.015 * w + 0.5) * 1.1
    return rgb * (1 - mask) + blurred * mask


def _snow(rgb, depth, sky, rng, severity, label=None, **_) -> np.ndarray:
    """Falling snow haze, white overcast sky, snow-covered ground and tops, flakes."""
    white = rng.uniform(0.8, 0.92) * np.float32([0.97, 0.99, 1.03])
    out = fog(rgb, depth, 0.006 + 0.025 * severity, white)
    out = _desaturate(out, 0.3)
    overcast = white * (1 - 0.06 * smooth_noise(rng, depth.shape, across=6))[..., None]
    out = np.where(sky[..., None], overcast, out)
    if label is not None:
        out = _snow_cover(out, label, rng, severity)
    for radius, amount, blur in ((0.0, 900, 0.0), (0.006, 150, 0.5), (0.015, 25, 2.0)):
        flakes = _flakes(rng, depth.shape, int(amount * severity * depth.size / 32768),
                         radius, blur)
        out = out * (1 - flakes[..., None]) + white * flakes[..., None]
    return out


def _snow_cover(rgb, label, rng, severity) -> np.ndarray:
    """Snow on the ground (less on the busy road) and on top edges of objects."""
    h, w = label.shape
    snow = np.float32([0.9, 0.92, 0.96])
    cover_by_class = np.zeros(256, np.float32)
    cover_by_class[[ID['road'], ID['sidewalk'], ID['terrain'], ID['vegetation']]] = [
        0.35 + 0.4 * severity, 0.85, 0.95, 0.35]                    # traffic clears the road
    drifts = 0.5 + 0.5 * np.clip(smooth_noise(rng, (h, w), across=6), -1, 1)
    cover = np.clip(cover_by_class[label] * (0.6 + 0.8 * drifts) - 0.1, 0, 1)
    capped = np.isin(label, SNOW_CAPPED)
    top_edge = capped.copy()
    top_edge[1:] &= label[1:] != label[:-1]
    thickness = max(int(round(h / 64)), 1)                          # grow the edge downwards
    cap = cv2.dilate(top_edge.astype(np.uint8), np.ones((thickness + 1, 1), np.uint8),
                     anchor=(0, thickness)).astype(bool) & capped
    cover = np.maximum(cover, cap * 0.9)
    brightness = 0.75 + 0.25 * rgb.mean(axis=2, keepdims=True) / max(rgb.mean(), 1e-3)
    snowy = snow * np.clip(brightness, 0.7, 1.05)
    return rgb * (1 - cover[..., None]) + snowy * cover[..., None]


def _flakes(rng, shape, count: int, radius: float, blur: float) -> np.ndarray:
    """Snow flakes as discs of `radius` (fraction of the width), defocused by `blur`."""
    h, w = shape
    layer = np.zeros(shape, np.float32)
    xs, ys = rng.integers(0, w, count), rng.integers(0, h, count)
    alphas = rng.uniform(0.4, 1.0, count)
    if radius == 0:
        layer[ys, xs] = alphas
    else:
        for x, y, a in zip(xs, ys, alphas):
            cv2.circle(layer, (int(x), int(y)), max(int(radius * w), 1), float(a), -1)
    if blur:
        layer = cv2.GaussianBlur(layer, (0, 0), blur * w / 256)
    return np.clip(layer, 0, 1)


def _desaturate(rgb, amount: float) -> np.ndarray:
    """Move colours `amount` of the way towards grey (overcast light is flat)."""
    grey = rgb.mean(axis=2, keepdims=True)
    return rgb + (grey - rgb) * amount


RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    'fog': _fog, 'night': _night, 'rain': _rain, 'snow': _snow}
