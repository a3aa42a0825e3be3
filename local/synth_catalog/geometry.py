"""Geometry in figure units: the arms, the dress's outline and where the figure lands on the
canvas (the camera)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from local.synth_catalog.rules import (
    ARM_SEGMENTS,
    ARM_WIDTHS,
    ARMPIT,
    NECKLINES,
    SHOULDER_JOINT,
    SHOULDER_TIP,
    SILHOUETTES,
    SLEEVES,
    WAIST_Y,
    Points,
    on_shoulder,
)
from local.synth_catalog.sampling import DressStyle


def mirror(right: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A symmetric outline from its right half given top to bottom (centre points included)."""
    left = [(-x, y) for x, y in reversed(right) if x > 1e-9]
    return list(right) + left


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> Points:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def thick_line(points: Sequence[tuple[float, float]], half_widths: Sequence[float]) -> Points:
    """A polygon around a polyline whose half-width varies along it."""
    p = np.asarray(points, dtype=float)
    d = np.gradient(p, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    w = np.asarray(half_widths, dtype=float)[:, None]
    return np.concatenate([p + n * w, (p - n * w)[::-1]])


def _along(chain: Points, s: np.ndarray) -> Points:
    """Points at arc lengths `s` along a polyline."""
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(chain, axis=0), axis=1))])
    return np.stack([np.interp(s, cum, chain[:, 0]), np.interp(s, cum, chain[:, 1])], axis=1)


@dataclass(frozen=True)
class Arm:
    chain: Points  # shoulder joint, elbow, wrist, hand tip

    @classmethod
    def posed(cls, side: int, spread: float, bend: float) -> Arm:
        pts = [np.array([side * SHOULDER_JOINT[0], SHOULDER_JOINT[1]])]
        for length, angle in zip(ARM_SEGMENTS, (spread, spread - bend, spread - bend), strict=True):
            pts.append(pts[-1] + length * np.array([side * math.sin(angle), math.cos(angle)]))
        return cls(np.array(pts))

    def polygon(self, start: float = 0.0) -> Points:
        total = sum(ARM_SEGMENTS)
        s = np.linspace(start, total, 16)
        knots = np.cumsum([0.0, *ARM_SEGMENTS[:2], ARM_SEGMENTS[2] * 0.4, ARM_SEGMENTS[2] * 0.6])
        return thick_line(_along(self.chain, s), np.interp(s, knots, ARM_WIDTHS))

    def sleeve(self, length: float, flare: float) -> Points:
        s = np.linspace(0.0, length, 10)
        widths = np.interp(s, [0, ARM_SEGMENTS[0], sum(ARM_SEGMENTS[:2])], ARM_WIDTHS[:3]) + 0.004
        widths = widths + flare * np.clip((s - length + 0.04) / 0.04, 0, 1)
        return thick_line(_along(self.chain, s), widths)


def _dress_profile(style: DressStyle) -> tuple[np.ndarray, np.ndarray]:
    """The dress's half-width as a function of height, from the armpit to the hem."""
    sil = SILHOUETTES[style.silhouette]
    if sil.boxy:
        y, hw = [ARMPIT[1], 0.275, WAIST_Y], [ARMPIT[0], sil.waist, sil.waist]
    else:
        y, hw = [ARMPIT[1], 0.27, 0.33, WAIST_Y], [ARMPIT[0], 0.09, 0.078, sil.waist]
    d = np.linspace(0.0, style.hem_y - WAIST_Y, 40)[1:]
    return np.concatenate([y, WAIST_Y + d]), np.concatenate([hw, sil.skirt(d)])


def _hem(style: DressStyle, half_width: float) -> list[tuple[float, float]]:
    """The hem from the right corner to the centre: a shallow arc (the skirt is round),
    scalloped by the folds of full skirts."""
    n_folds = SILHOUETTES[style.silhouette].folds[0]
    x = np.linspace(half_width, 0.0, 24)
    y = style.hem_y + 0.055 * half_width * (1 - (x / half_width) ** 2)
    if n_folds > 4:
        y = y + 0.004 * np.abs(np.sin(n_folds * np.pi * x / half_width / 2))
    return list(zip(x.tolist(), y.tolist(), strict=True))


def _bodice_top(style: DressStyle, sleeved: bool) -> list[tuple[float, float]]:
    """The top edge of the right half, from the centre front to the armpit."""
    neck = NECKLINES[style.neckline]
    edge = list(neck.edge())
    if not neck.shoulders:
        return [*edge, ARMPIT]
    if sleeved:
        return [*edge, SHOULDER_TIP, (0.104, 0.222), ARMPIT]
    strap = on_shoulder(max(neck.strap_x, edge[-1][0] + 0.012))
    return [*edge, strap, (strap[0] - 0.003, 0.2), (0.084, 0.23), ARMPIT]


@dataclass(frozen=True)
class DressShapes:
    body: list[Points]  # bodice + skirt, straps, neck band
    sleeves: list[Points]
    profile: tuple[np.ndarray, np.ndarray]
    waist_line: Points | None


def dress_shapes(style: DressStyle, arms: Sequence[Arm]) -> DressShapes:
    profile_y, profile_hw = _dress_profile(style)
    sleeve = SLEEVES[style.sleeve]
    right = _bodice_top(style, sleeve is not None)
    right += list(zip(profile_hw[1:].tolist(), profile_y[1:].tolist(), strict=True))
    right += _hem(style, float(profile_hw[-1]))[1:]
    body = [np.array(mirror(right))]
    neck = NECKLINES[style.neckline]
    for side in (-1, 1):
        if neck.straps:
            body.append(thick_line([(side * 0.05, 0.226), (side * 0.082, 0.172)], [0.005, 0.005]))
    if neck.neck_band:
        body.append(np.array([(-0.03, 0.145), (0.03, 0.145), (0.029, 0.165), (-0.029, 0.165)]))
    sleeves = []
    if sleeve is not None:
        for arm in arms:
            sleeves.append(arm.sleeve(*sleeve))
            # the sleeve head: rounds the shoulder into the bodice
            sleeves.append(ellipse(arm.chain[0, 0] * 0.95, arm.chain[0, 1] - 0.002, 0.027, 0.021))
    waist_line = None
    if SILHOUETTES[style.silhouette].waist_mark:
        hw = float(np.interp(WAIST_Y, profile_y, profile_hw))
        waist_line = np.array([(-hw, WAIST_Y), (0, WAIST_Y + 0.004), (hw, WAIST_Y)])
    return DressShapes(body, sleeves, (profile_y, profile_hw), waist_line)


@dataclass
class Camera:
    """Figure units -> canvas pixels: scale, small rotation, translation."""

    matrix: np.ndarray  # 2x2
    offset: np.ndarray  # 2

    def __call__(self, pts: Points | Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        p = np.asarray(pts, dtype=float) @ self.matrix.T + self.offset
        return [tuple(q) for q in p.tolist()]

    def array(self, pts: Points) -> np.ndarray:
        return np.asarray(pts, dtype=float) @ self.matrix.T + self.offset

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inv = np.linalg.inv(self.matrix).astype(np.float32)  # float32: half the memory traffic
        dx, dy = x - np.float32(self.offset[0]), y - np.float32(self.offset[1])
        return inv[0, 0] * dx + inv[0, 1] * dy, inv[1, 0] * dx + inv[1, 1] * dy

    @property
    def scale(self) -> float:
        return float(math.sqrt(abs(np.linalg.det(self.matrix))))


def place(shapes: DressShapes, size: int, rng: np.random.Generator) -> Camera:
    """Scale so the dress box is 30-90% of the image height, rotate a little, and put it
    anywhere it fits whole."""
    pts = np.concatenate(shapes.body + shapes.sleeves)
    height = pts[:, 1].max() - pts[:, 1].min()
    angle = math.radians(rng.uniform(-4, 4))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    scale = rng.uniform(0.3, 0.9) * size / height
    box = (pts @ rot.T) * scale
    extent = box.max(axis=0) - box.min(axis=0)
    if extent.max() > 0.96 * size:  # a very wide ball-gown: shrink it to fit
        scale *= 0.96 * size / extent.max()
        box = (pts @ rot.T) * scale
        extent = box.max(axis=0) - box.min(axis=0)
    margin = 0.02 * size
    lo = margin - box.min(axis=0)
    hi = size - margin - extent - box.min(axis=0)
    offset = np.array([rng.uniform(lo[k], max(lo[k], hi[k])) for k in range(2)])
    return Camera(rot * scale, offset)
