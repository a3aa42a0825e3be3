"""The scene around the dress: who or what wears it, the wall, the floor, the props and the
shadow."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from local.synth_catalog.geometry import Arm, Camera, ellipse, mirror, thick_line
from local.synth_catalog.rules import NECK_SIDE, SHOULDER_TIP, WAIST_Y, Color, hsv

# fmt: off
_SKINS = ((242, 208, 183), (226, 182, 150), (198, 146, 108), (160, 106, 72), (112, 74, 52),
          (82, 54, 40))
_HAIRS = ((30, 24, 20), (70, 46, 30), (120, 80, 45), (200, 160, 100), (150, 60, 30))
_MANNEQUINS = ((238, 234, 226), (220, 200, 175), (40, 40, 42), (200, 200, 204))
_WALLS = ((238, 234, 226), (224, 224, 222), (232, 220, 200), (200, 212, 196), (228, 204, 200),
          (196, 210, 224), (176, 110, 84), (70, 74, 80), (52, 60, 88), (214, 178, 92),
          (250, 250, 250))
_FLOORS = ((150, 108, 72), (184, 148, 108), (120, 120, 122), (200, 196, 190), (96, 70, 52),
           (220, 214, 200))
# fmt: on


@dataclass(frozen=True)
class Figure:
    kind: str  # model, mannequin, stand
    skin: Color
    hair: Color | None
    hair_style: str
    shoes: Color
    arms: tuple[Arm, Arm]


def sample_figure(rng: np.random.Generator) -> Figure:
    kind = ("model", "mannequin", "stand")[rng.choice(3, p=[0.6, 0.25, 0.15])]
    skin = _SKINS[rng.integers(len(_SKINS))] if kind == "model" else _MANNEQUINS[rng.integers(4)]
    arms = tuple(
        Arm.posed(side, rng.uniform(0.1, 0.42), rng.uniform(-0.05, 0.3)) for side in (-1, 1)
    )
    return Figure(
        kind=kind,
        skin=tuple(float(c) for c in skin),
        hair=_HAIRS[rng.integers(len(_HAIRS))] if kind == "model" else None,
        hair_style=("bun", "bob", "long")[rng.integers(3)],
        shoes=hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.1, 0.8)),
        arms=arms,  # type: ignore[arg-type]
    )


def pixel_color(color: Color, factor: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in color)  # type: ignore[return-value]


def draw_background(img: Image.Image, cam: Camera, rng: np.random.Generator) -> None:
    size = img.width
    draw = ImageDraw.Draw(img)
    wall = np.array(_WALLS[rng.integers(len(_WALLS))], dtype=float)
    feet_y = cam.array(np.array([[0.0, 1.0]]))[0, 1]
    studio = rng.random() < 0.25
    floor_y = size + 1 if studio else feet_y - rng.uniform(0.03, 0.16) * cam.scale
    shade = np.linspace(1.04, 0.9, 16) if not studio else np.linspace(1.0, 0.86, 16)
    for k, f in enumerate(shade):  # a soft vertical light gradient
        y0 = int(k * size / len(shade))
        draw.rectangle([0, y0, size, size], fill=pixel_color(tuple(wall), f))
    if floor_y < size:
        floor = _FLOORS[rng.integers(len(_FLOORS))]
        draw.rectangle([0, floor_y, size, size], fill=pixel_color(floor))
        if rng.random() < 0.5:  # a skirting board
            draw.rectangle(
                [0, floor_y - 0.02 * cam.scale, size, floor_y], fill=pixel_color(wall, 1.1)
            )
        if rng.random() < 0.5:  # planks
            gap = 0.06 * cam.scale
            for k in range(1, 12):
                y = floor_y + gap * k * (1 + 0.15 * k)
                draw.line(
                    [(0, y), (size, y)], fill=pixel_color(floor, 0.88), width=max(1, size // 256)
                )
    for _ in range(rng.integers(0, 3)):
        prop = ("plant", "frame", "lamp")[rng.integers(3)]
        _PROPS[prop](draw, cam, rng, min(floor_y, size * 0.98))


def _prop_x(cam: Camera, rng: np.random.Generator, size: int) -> float:
    """A prop's centre: left or right of the figure, not behind it."""
    centre = cam.array(np.array([[0.0, 0.5]]))[0, 0]
    side = rng.choice([-1, 1])
    x = centre + side * rng.uniform(0.35, 0.7) * cam.scale
    return float(x if 0 < x < size else centre - side * rng.uniform(0.35, 0.7) * cam.scale)


def _draw_plant(draw: ImageDraw.ImageDraw, cam: Camera, rng: np.random.Generator, ground: float):
    s = cam.scale * rng.uniform(0.7, 1.1)
    x = _prop_x(cam, rng, draw.im.size[0])
    pot = pixel_color(((190, 100, 60), (235, 235, 230), (60, 60, 60))[rng.integers(3)])
    h = 0.12 * s
    draw.polygon(
        [
            (x - 0.06 * s, ground - h),
            (x + 0.06 * s, ground - h),
            (x + 0.045 * s, ground),
            (x - 0.045 * s, ground),
        ],
        fill=pot,
    )
    green = hsv(rng.uniform(0.25, 0.4), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.6))
    for _ in range(rng.integers(7, 13)):
        a = rng.uniform(-1.2, 1.2)
        length = rng.uniform(0.12, 0.25) * s
        tip = (x + math.sin(a) * length, ground - h - math.cos(a) * length)
        mid = ((x + tip[0]) / 2, (ground - h + tip[1]) / 2)
        nx, ny = math.cos(a) * 0.025 * s, -math.sin(a) * 0.025 * s
        draw.polygon(
            [(x, ground - h), (mid[0] + nx, mid[1] + ny), tip, (mid[0] - nx, mid[1] - ny)],
            fill=pixel_color(green, rng.uniform(0.8, 1.2)),
        )


def _draw_frame(draw: ImageDraw.ImageDraw, cam: Camera, rng: np.random.Generator, ground: float):
    s = cam.scale * rng.uniform(0.6, 1.0)
    x = _prop_x(cam, rng, draw.im.size[0])
    w, h = rng.uniform(0.15, 0.3) * s, rng.uniform(0.15, 0.3) * s
    y = ground - rng.uniform(0.55, 0.8) * cam.scale
    border = pixel_color(
        ((40, 30, 25), (230, 230, 228), (180, 140, 60), (120, 80, 50))[rng.integers(4)]
    )
    draw.rectangle([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=border)
    pad = 0.015 * s
    inner = hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.4, 0.95))
    draw.rectangle(
        [x - w / 2 + pad, y - h / 2 + pad, x + w / 2 - pad, y + h / 2 - pad],
        fill=pixel_color(inner),
    )
    accent = hsv(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))
    r = min(w, h) * rng.uniform(0.12, 0.25)
    cx, cy = x + rng.uniform(-0.2, 0.2) * w, y + rng.uniform(-0.2, 0.2) * h
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=pixel_color(accent))


def _draw_lamp(draw: ImageDraw.ImageDraw, cam: Camera, rng: np.random.Generator, ground: float):
    s = cam.scale * rng.uniform(0.8, 1.1)
    x = _prop_x(cam, rng, draw.im.size[0])
    top = ground - 0.7 * s
    metal = pixel_color(((40, 40, 40), (180, 160, 110), (200, 200, 200))[rng.integers(3)])
    draw.rectangle([x - 0.006 * s, top, x + 0.006 * s, ground], fill=metal)
    draw.ellipse([x - 0.05 * s, ground - 0.012 * s, x + 0.05 * s, ground + 0.006 * s], fill=metal)
    shade = pixel_color(hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.3), rng.uniform(0.75, 0.98)))
    draw.polygon(
        [
            (x - 0.05 * s, top - 0.12 * s),
            (x + 0.05 * s, top - 0.12 * s),
            (x + 0.08 * s, top + 0.01 * s),
            (x - 0.08 * s, top + 0.01 * s),
        ],
        fill=shade,
    )


_PROPS = {"plant": _draw_plant, "frame": _draw_frame, "lamp": _draw_lamp}


def draw_shadow(img: Image.Image, cam: Camera) -> None:
    """A soft shadow on the floor under the feet."""
    (x, y), s = cam.array(np.array([[0.0, 1.0]]))[0], cam.scale
    rx, ry = 0.22 * s, 0.03 * s
    pad = int(ry * 2 + 4)
    box = (int(x - rx - pad), int(y - ry - pad), int(x + rx + pad), int(y + ry + pad))
    patch = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(patch).ellipse([pad, pad, patch.width - pad, patch.height - pad], fill=90)
    patch = patch.filter(ImageFilter.GaussianBlur(ry * 0.8))
    img.paste((30, 30, 30), box, patch)


def draw_figure_back(img: Image.Image, cam: Camera, fig: Figure) -> None:
    """Everything the dress covers or sits in front of: hair, legs, torso, neck, head, arms."""
    draw = ImageDraw.Draw(img)
    skin, shadow = pixel_color(fig.skin), pixel_color(fig.skin, 0.85)
    if fig.hair and fig.hair_style == "long":
        draw.polygon(
            cam([(-0.05, 0.05), (0.05, 0.05), (0.06, 0.2), (-0.06, 0.2)]),
            fill=pixel_color(fig.hair),
        )
    if fig.kind == "stand":
        metal = (60, 60, 64)
        draw.polygon(cam([(-0.008, 0.5), (0.008, 0.5), (0.008, 0.99), (-0.008, 0.99)]), fill=metal)
        draw.polygon(cam(ellipse(0.0, 0.99, 0.08, 0.012)), fill=metal)
    else:
        for side in (-1, 1):
            leg = [(side * 0.048, 0.48), (side * 0.036, 0.72), (side * 0.03, 0.955)]
            draw.polygon(cam(thick_line(leg, [0.048, 0.029, 0.018])), fill=shadow)
            if fig.kind == "model":
                draw.polygon(
                    cam(ellipse(side * 0.036, 0.975, 0.022, 0.022)), fill=pixel_color(fig.shoes)
                )
            else:
                draw.polygon(cam(ellipse(side * 0.034, 0.972, 0.02, 0.02)), fill=shadow)
    torso = mirror(
        [
            (0.0, 0.155),
            NECK_SIDE,
            SHOULDER_TIP,
            (0.1, 0.24),
            (0.088, 0.3),
            (0.066, WAIST_Y),
            (0.095, 0.48),
            (0.08, 0.54),
            (0.0, 0.55),
        ]
    )
    draw.polygon(cam(torso), fill=skin)
    for side in (-1, 1):
        draw.polygon(cam(ellipse(side * 0.1, 0.205, 0.03, 0.025)), fill=skin)
    draw.polygon(cam([(-0.025, 0.09), (0.025, 0.09), (0.027, 0.17), (-0.027, 0.17)]), fill=shadow)
    _draw_head(draw, cam, fig)
    for arm in fig.arms:
        draw.polygon(cam(arm.polygon()), fill=skin)


def _draw_head(draw: ImageDraw.ImageDraw, cam: Camera, fig: Figure) -> None:
    skin = pixel_color(fig.skin)
    if fig.kind == "stand":  # a dress form: a neck cap instead of a head
        draw.polygon(cam(ellipse(0.0, 0.1, 0.03, 0.012)), fill=(60, 60, 64))
        return
    if fig.hair is None:  # a mannequin's egg head
        draw.polygon(cam(ellipse(0.0, 0.064, 0.042, 0.058)), fill=skin)
        return
    hair = pixel_color(fig.hair)
    if fig.hair_style == "bun":
        draw.polygon(cam(ellipse(0.0, 0.006, 0.026, 0.02)), fill=hair)
    draw.polygon(
        cam(ellipse(0.0, 0.056, 0.05, 0.058 if fig.hair_style != "bob" else 0.066)), fill=hair
    )
    draw.polygon(cam(ellipse(0.0, 0.072, 0.039, 0.05)), fill=skin)
