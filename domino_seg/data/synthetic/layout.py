"""The random layout a scene starts from: camera, sun and the street's cross-section.

Sampled first in `render_scene`, and read by the ground and by every object that stands along
the street (kerbs, lots, lanes, the cross street), so it sits below both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import Camera, Sun
from .materials import hsv


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
