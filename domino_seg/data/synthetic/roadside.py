"""What lines the street: buildings, walls, fences, hedges, trees and the distant skyline.

Each function places one kind of thing along the street and returns (distance, painter) items;
the looks come from `materials`, the drawing from `geometry`.
"""
from __future__ import annotations

import math

import numpy as np

from .geometry import MIN_THIN_PX, Canvas, Item, Sun, box, front_plane, painter, side_plane
from .layout import Street
from .materials import facade, fence, hedge, hsv, pick, skyline, tree, treeline, wall

BUILDING_STYLES = {   # lengths, setbacks, heights (m), chance of a gap, gap lengths
    'urban': dict(length=(8, 28), setback=(0, 3), height=(8, 30), gap_chance=0.2,
                  gap=(2, 8)),
    'suburban': dict(length=(8, 14), setback=(3, 9), height=(5, 8), gap_chance=0.7,
                     gap=(3, 12)),
    'park': dict(length=(15, 35), setback=(20, 40), height=(10, 25), gap_chance=0.6,
                 gap=(10, 30)),
}


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
        items.append((z, painter(draw_building, x=centre, z=z, width=width, length=length,
                                  look=look, shades=shades, lit_windows=lit)))
        top = look['height'] + look['roof_height'] / 2
        shadows.append((centre - width / 2, centre + width / 2, z, z + length, top))
        z += length
        if rng.random() < limits['gap_chance']:
            z += rng.uniform(*limits['gap'])
    return items


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
        items.append((z, painter(front_plane, z=z, x0=-half, x1=half, y0=0, y1=45,
                                  material=lambda u, v: material(u + half, v))))
    if rng.random() < 0.5 or not items:
        green = hsv(rng.uniform(0.22, 0.32), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.4))
        items.append((z - 8, painter(front_plane, z=z - 8, x0=-half, x1=half, y0=0, y1=20,
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
            items.append((z, painter(side_plane, x=x, z0=z, z1=z + length, y0=0,
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
        items.append((z, painter(draw_tree, x=x, z=z, look=look, shade=shade)))
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
