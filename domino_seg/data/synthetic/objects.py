"""What stands in and by the road: street lamps, signs, traffic lights, vehicles, pedestrians.

Each function places one kind of object and returns (distance, painter) items; vehicles also
register their boxes as ground shadows. Looks come from `materials`, drawing from `geometry`.
"""
from __future__ import annotations

import numpy as np

from .geometry import ID, MIN_THIN_PX, Canvas, Item, Sun, box, front_plane, painter
from .layout import Street
from .materials import (
    hsv,
    jitter_hsv,
    person,
    pick,
    sign,
    street_lamp,
    traffic_light,
    vehicle_end,
    vehicle_side,
)

PALETTE = {   # vehicle paints (hsv), roughly by how common they are
    'car': [(0, 0, 0.92), (0, 0, 0.08), (0, 0, 0.6), (0, 0, 0.4), (0.0, 0.8, 0.6),
            (0.6, 0.7, 0.45), (0.6, 0.5, 0.25), (0.33, 0.5, 0.3), (0.1, 0.3, 0.7)],
    'bus': [(0.0, 0.85, 0.7), (0.13, 0.85, 0.85), (0, 0, 0.9), (0.58, 0.7, 0.55),
            (0.35, 0.6, 0.5)],
    'truck': [(0, 0, 0.88), (0, 0, 0.7), (0.6, 0.6, 0.5), (0.02, 0.7, 0.6), (0.1, 0.7, 0.8)],
}


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
            items.append((z, painter(draw_lamp, x=x, z=float(z), look=look, reach=reach)))
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
        items.append((z, painter(draw_sign, x=x, z=z, look=look)))
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
            items.append((z, painter(draw_traffic_light, x=x, z=z, look=look)))
    if street.crossing is not None and rng.random() < 0.7:
        side = pick(rng, [-1, 1])
        x, reach = street.kerb(side) + side * 0.6, -side * rng.uniform(3.5, 6.0)
        pole = dict(height=6.3, colour=hsv(0, 0, 0.35))
        items.append((stops[0] + 0.01, painter(draw_lamp, x=x, z=stops[0], look=pole,
                                                reach=reach)))
        for box_u in (0.55 * reach, 0.95 * reach):
            look = dict(top=6.3, box_u=box_u, housing=housing, plate=plate, lit=lit,
                        post_colour=housing, box_width=0.6, post=0.0)
            items.append((stops[0], painter(draw_traffic_light, x=x, z=stops[0], look=look)))
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
        items.append((z, painter(draw_vehicle, x=x, z=z, parts=parts, offsets=offsets,
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
        items.append((z, painter(draw_person, x=x, z=z, look=look, shade=shade)))
    return items


def draw_person(canvas: Canvas, x: float, z: float, look: dict, shade: float) -> None:
    material, half = person(look, shade), 0.21 * look['height']
    front_plane(canvas, z, x - half, x + half, 0, look['height'],
                lambda u, v: material(u - x, v))
