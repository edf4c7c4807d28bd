"""Physically motivated weather for clear images with a depth map.

A condition is a set of physical attributes (:class:`Weather`): illumination (day, dusk,
night), visibility (clear, mist, fog, dense fog), precipitation (none, rain, snow) and ground
(dry, wet, snow-covered). Any combination renders, in the order light travels: the ground's
surface, the light falling on the scene (daylight, dimmed under clouds; dusk and night lit by
the ambient light and the street lamps, whose light pools on the surfaces near them), wet
ground mirroring the lit scene, the air between scene and camera (Koschmieder scattering by
fog and by the haze of falling rain or snow, with an airlight of the ambient light's colour;
lamps glow with halos that grow with its density), falling drops or flakes lit by the same
light, and the sensor (noise grows as the light fades). Named conditions (``PRESETS``) are
attribute sets: the benchmark's fog, night, rain and snow, further single attributes (dusk,
light and dense fog) and their compositions (a foggy night, a rainy dusk, a snowy night).

Works on synthetic scenes and on real images with an estimated depth: the label map and the
light sources are optional refinements (wet roads, snow cover and lit lamps need to know where
roads and lamps are). All randomness comes from the `rng` argument, so a result is
reproducible. `severity` in [0, 1] scales the effect; None draws it from `rng` (0.3 to 0.85).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence, Union

import cv2
import numpy as np

from domino_seg.conditions import ACDC_CONDITIONS

from .geometry import ID, SKY_DEPTH
from .materials import smooth_noise

SKY_FROM_DEPTH = SKY_DEPTH / 2    # without labels, pixels at least this far are taken as sky
GROUND = [ID['road'], ID['sidewalk']]
SNOW_CAPPED = [ID[name] for name in ('building', 'wall', 'fence', 'pole', 'vegetation', 'car',
                                     'truck', 'bus')]
GAMMA = 2.2


@dataclass(frozen=True)
class Weather:
    """A condition as physical attributes; the defaults are a clear dry day."""
    illumination: str = 'day'      # day | dusk | night
    visibility: str = 'clear'      # clear | mist | fog | dense_fog
    precipitation: str = 'none'    # none | rain | snow
    ground: str = 'dry'            # dry | wet | snow

    def __post_init__(self) -> None:
        for field in fields(self):
            value, options = getattr(self, field.name), ATTRIBUTES[field.name]
            if value not in options:
                raise ValueError(f'unknown {field.name} {value!r}; expected one of {options}')

    def changed(self) -> dict:
        """The attributes that differ from a clear dry day."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != f.default}


ATTRIBUTES = {'illumination': ('day', 'dusk', 'night'),
              'visibility': ('clear', 'mist', 'fog', 'dense_fog'),
              'precipitation': ('none', 'rain', 'snow'),
              'ground': ('dry', 'wet', 'snow')}


def compose(*parts: Weather) -> Weather:
    """The condition with every part's changed attributes (parts must not disagree)."""
    merged: dict = {}
    for part in parts:
        for name, value in part.changed().items():
            if merged.setdefault(name, value) != value:
                raise ValueError(f'the parts disagree on {name}: {merged[name]!r} vs {value!r}')
    return Weather(**merged)


_SINGLE = {
    'clear': Weather(),
    'fog': Weather(visibility='fog'),
    'night': Weather(illumination='night'),
    'rain': Weather(precipitation='rain', ground='wet'),
    'snow': Weather(precipitation='snow', ground='snow'),
    'dusk': Weather(illumination='dusk'),
    'light_fog': Weather(visibility='mist'),
    'dense_fog': Weather(visibility='dense_fog'),
}
# named compositions -> the named conditions they combine
PARTS = {
    'foggy_night': ('fog', 'night'),
    'foggy_dusk': ('fog', 'dusk'),
    'rainy_night': ('rain', 'night'),
    'rainy_dusk': ('rain', 'dusk'),
    'snowy_night': ('snow', 'night'),
    'snowy_dusk': ('snow', 'dusk'),
    'foggy_rain': ('fog', 'rain'),
    'foggy_snow': ('fog', 'snow'),
}
PRESETS: dict[str, Weather] = {**_SINGLE, **{name: compose(*(_SINGLE[p] for p in parts))
                                             for name, parts in PARTS.items()}}
CONDITIONS = ('clear',) + ACDC_CONDITIONS   # the benchmark's; the order seeds its samples


def fog(image: np.ndarray, depth: np.ndarray, beta, airlight) -> np.ndarray:
    """Koschmieder's atmospheric scattering: I = J t + A (1 - t) with transmission
    t = exp(-beta d). `image` (J) and `airlight` (A) are in the same units (e.g. 0..1);
    `beta` (1/m) may be a scalar or a per-pixel map."""
    t = np.exp(-np.asarray(beta) * np.asarray(depth))[..., None]
    return image * t + np.asarray(airlight) * (1 - t)


def weather_of(condition: Union[str, Weather]) -> Weather:
    """A preset's attributes (a Weather is returned as is)."""
    if isinstance(condition, Weather):
        return condition
    if condition not in PRESETS:
        raise ValueError(f'unknown weather condition {condition!r}; expected one of '
                         f'{tuple(PRESETS)} or a Weather of attributes')
    return PRESETS[condition]


def render_weather(image: np.ndarray, depth: np.ndarray, condition: Union[str, Weather],
                   rng: np.random.Generator, label: np.ndarray | None = None,
                   lights: Sequence | None = None, severity: float | None = None) -> np.ndarray:
    """Return `image` (H x W x 3 uint8 RGB, clear daylight) as seen in `condition` (a preset
    name or a :class:`Weather`).

    depth: H x W metres (sky: large). label: optional Cityscapes trainIds. lights: optional
    (x, y, radius, rgb) light sources in pixels, lit at dusk and night; random street lamps
    when None.
    """
    weather = weather_of(condition)
    if weather == Weather():
        return image.copy()
    if severity is None:
        severity = rng.uniform(0.3, 0.85)
    severity = float(severity)
    depth = np.asarray(depth, np.float32)
    h, w = depth.shape
    sky = label == ID['sky'] if label is not None else depth >= SKY_FROM_DEPTH
    albedo = (image.astype(np.float32) / 255.0) ** GAMMA                 # to linear light
    if weather.ground == 'snow' and label is not None:
        albedo = _snow_cover(albedo, label, rng, severity)
    light = _illumination(weather, severity, rng, h, w, lights)
    scene = albedo * (light.ambient + light.pool)
    scene = np.where(sky[..., None], light.sky if light.sky is not None else albedo, scene)
    if weather.ground == 'wet' and label is not None:  # the road mirrors the lamps too (their
        # glare is added after the air, where it is seen through it)
        scene = _wet_ground(scene + light.glare, label, rng, severity) - light.glare
    beta = _extinction(weather, severity, rng, depth.shape)
    out = _scatter(scene, depth, beta, light, w)
    out = _particles(out, weather, severity, rng, light, depth.shape)
    out = np.clip(out, 0, 1) ** (1 / GAMMA)
    out += rng.normal(0, light.noise, out.shape).astype(np.float32) * np.sqrt(out + 0.05)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


@dataclass
class _Light:
    ambient: np.ndarray          # RGB (linear) of the light falling on every surface
    pool: np.ndarray             # H x W x 3 lamp light falling on nearby surfaces
    sky: np.ndarray | None       # H x W x 3 sky radiance, None: the image's own
    glare: np.ndarray            # H x W x 3 the lamps themselves
    emitted: np.ndarray | None   # H x W x 3 lamp discs, for halos
    airlight: np.ndarray         # RGB radiance of fog and haze
    noise: float                 # sensor noise (sRGB units at mid grey)


def _illumination(weather: Weather, severity: float, rng, h: int, w: int, lights) -> _Light:
    """Daylight (dimmer and flatter under rain or snow clouds), dusk (warm, low, lamps on) or
    night (dim bluish ambient light, a dark sky with a city glow, lamps lighting the surfaces
    near them)."""
    down = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    overcast = {'none': 1.0, 'rain': rng.uniform(0.45, 0.65), 'snow': rng.uniform(0.8, 0.95)}[
        weather.precipitation]
    if weather.illumination == 'day':
        ambient = np.float32([1, 1, 1]) * overcast
        level = rng.uniform(0.55, 0.85) * overcast
        sky = None if weather.precipitation == 'none' else (
            level * np.float32([0.96, 0.98, 1.0]) *
            (1 - 0.1 * smooth_noise(rng, (h, w), across=6))[..., None]).astype(np.float32)
        airlight = level * np.float32([0.97, 0.99, 1.02])
        none = np.zeros((h, w, 3), np.float32)
        return _Light(ambient, none, sky, none, None, airlight, 0.01)
    if weather.illumination == 'dusk':
        ambient = (rng.uniform(0.08, 0.15) * (1.1 - 0.4 * severity) * overcast *
                   np.float32([1.0, 0.78, 0.6]))
        lamps = 0.6
        sky = (np.float32([0.03, 0.05, 0.12]) + down ** 2 * np.float32([0.3, 0.16, 0.07])) * \
            rng.uniform(0.7, 1.3) * overcast
        noise = 0.015 + 0.015 * severity
    else:
        ambient = rng.uniform(0.04, 0.1) * (1.2 - severity) * np.float32([0.7, 0.85, 1.2])
        lamps = 1.0
        sky = (np.float32([0.004, 0.006, 0.015]) + down ** 3 * np.float32([0.03, 0.02, 0.01])) * \
            rng.uniform(0.6, 1.4)
        noise = 0.02 + 0.03 * severity
    if lights is None:
        lights = _random_lamps(rng, h, w)
    emitted = _light_layer(lights, h, w) * lamps
    pool = cv2.GaussianBlur(emitted, (0, 0), 0.04 * w) * (0.04 * w) ** 2 * 0.06
    glare = emitted + 0.6 * cv2.GaussianBlur(emitted, (0, 0), 0.008 * w + 0.5)
    sky = np.broadcast_to(sky, (h, w, 3)).astype(np.float32)
    airlight = ambient * 0.8 + sky[0, 0] * 0.5 + pool.mean(axis=(0, 1)) * 0.2  # lit by lamps
    return _Light(ambient, pool, sky, glare, emitted, airlight.astype(np.float32), noise)


VISIBILITY_M = {'mist': (480, 330), 'fog': (150, 120), 'dense_fog': (40, 20)}  # a - b * severity
HAZE = {'none': (0.0, 0.0), 'rain': (0.003, 0.012), 'snow': (0.006, 0.025)}   # beta a + b * s


def _extinction(weather: Weather, severity: float, rng, shape) -> np.ndarray | float:
    """The extinction coefficient (1/m): fog of the visibility's distance (contrast threshold
    2 %, Koschmieder), patchy, plus the haze of falling rain or snow."""
    beta = 0.0
    if weather.visibility != 'clear':
        a, b = VISIBILITY_M[weather.visibility]
        beta = 3.912 / ((a - b * severity) * rng.uniform(0.85, 1.15))
        beta = beta * (1 + 0.25 * smooth_noise(rng, shape, across=8))
    a, b = HAZE[weather.precipitation]
    return beta + a + b * severity


def _scatter(scene, depth, beta, light: _Light, w: int) -> np.ndarray:
    """Scene light attenuated and blurred by the air, the airlight added, the lamps seen
    through it with halos that widen and brighten as the air thickens."""
    t = np.exp(-np.asarray(beta) * depth)[..., None]
    softened = scene * t + cv2.GaussianBlur(scene, (0, 0), 1.0) * (1 - t)   # forward scattering
    out = softened * t + light.airlight * (1 - t)
    if light.emitted is None:
        return out
    density = float(np.mean(beta)) * 30                # optical depth of 30 m of air
    scattered = 1 - np.exp(-density)
    halo = (cv2.GaussianBlur(light.emitted, (0, 0), (0.015 + 0.03 * scattered) * w) * 3 +
            cv2.GaussianBlur(light.emitted, (0, 0), (0.05 + 0.1 * scattered) * w) * 5)
    return out + light.glare * t + scattered * halo


def _particles(out, weather: Weather, severity: float, rng, light: _Light, shape):
    """Rain streaks and lens drops, or snow flakes, as bright as the light around them."""
    if weather.precipitation == 'none':
        return out
    lit = np.clip(float(np.mean(light.ambient)) + np.mean(light.pool, axis=-1, keepdims=True),
                  0, 1)                                         # (lamps light the near ones)
    if weather.precipitation == 'rain':
        wind = rng.normal(0, 12)                                    # degrees from vertical
        for length, amount, width in ((0.03, 1200, 1), (0.08, 250, 2)):   # far thin, near long
            streaks = _streaks(rng, shape, int(amount * severity * out[..., 0].size / 32768),
                               length, width, angle=wind)[..., None]
            out = out + streaks * (np.maximum(0.7 * lit, 1.2 * out) - out) * 0.5
        return _lens_drops(out, rng, int(rng.integers(0, 4 + 4 * severity)))
    white = np.float32([0.97, 0.99, 1.03]) * rng.uniform(0.8, 0.92)
    for radius, amount, blur in ((0.0, 900, 0.0), (0.006, 150, 0.5), (0.015, 25, 2.0)):
        flakes = _flakes(rng, shape, int(amount * severity * out[..., 0].size / 32768),
                         radius, blur)[..., None]
        out = out * (1 - flakes) + np.maximum(white * lit, 1.3 * out) * flakes
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
