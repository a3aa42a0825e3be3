"""Rendering one photo: the scene, then the dress's cloth (colour, pattern, folds, sheen)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from local.synth_catalog.geometry import Camera, DressShapes, dress_shapes, place
from local.synth_catalog.rules import ARM_SEGMENTS, SILHOUETTES, WAIST_Y
from local.synth_catalog.sampling import DressStyle
from local.synth_catalog.scene import (
    Figure,
    draw_background,
    draw_figure_back,
    draw_shadow,
    pixel_color,
    sample_figure,
)


def _fabric(
    style: DressStyle,
    cam: Camera,
    box: tuple[int, int, int, int],
    mask: Image.Image,
    profile: tuple[np.ndarray, np.ndarray],
    folds: bool,
) -> Image.Image:
    """The dress's cloth over `box`: colour, pattern, shading, folds and sheen."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    u, v = cam.inverse(xs, ys)
    radius = max(1.0, 0.012 * cam.scale)
    blurred = np.asarray(mask.crop(box).filter(ImageFilter.BoxBlur(radius)), dtype=np.float32)
    light = 0.72 + 0.28 * (blurred / 255.0) ** 0.7
    n_folds, amplitude = SILHOUETTES[style.silhouette].folds
    skirt = np.clip((v - WAIST_Y) / np.float32(max(style.hem_y - WAIST_Y, 1e-3)), 0, 1) ** 0.7
    wave = np.zeros_like(u)
    if folds:  # folds fan out with the skirt: their phase follows the local half-width
        hw = np.interp(v, profile[0], profile[1]).astype(np.float32)
        wave = np.sin(np.float32(np.pi * n_folds) * u / np.maximum(hw, 1e-3) + 0.7)
        light = light * (1 + np.float32(amplitude * (1 + 2 * style.sheen)) * skirt * wave)
    rgb = np.array(style.color, dtype=np.float32)[None, None, :] * light[..., None]
    ink = _pattern(style, u, v)
    if ink is not None:
        pat = np.array(style.pattern_color, dtype=np.float32)[None, None, :] * light[..., None]
        rgb = rgb * (1 - ink[..., None]) + pat * ink[..., None]
    if style.sheen > 0:
        gloss = np.clip(wave, 0, 1) ** 6 * (0.3 + 0.7 * skirt) if folds else 0
        gloss = style.sheen * (gloss + 0.5 * np.exp(-(((u - 0.035) / 0.03) ** 2)) * (v < WAIST_Y))
        rgb = rgb + gloss[..., None] * (255 - rgb) * 0.7
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _pattern(style: DressStyle, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """How much of the pattern colour shows at each point (0..1), or None for a solid dress."""
    if style.pattern is None:
        return None
    p = style.pattern_period
    c, s = math.cos(style.pattern_angle), math.sin(style.pattern_angle)
    a, b = (u * c + v * s) / p, (-u * s + v * c) / p
    if style.pattern == "stripes":
        return (np.mod(a, 1.0) < 0.4).astype(np.float32)
    if style.pattern == "gingham":
        return ((np.mod(a, 1.0) < 0.5).astype(np.float32) + (np.mod(b, 1.0) < 0.5)) * 0.45
    row = np.floor(b)
    fx = np.mod(a + 0.5 * np.mod(row, 2), 1.0) - 0.5
    fy = np.mod(b, 1.0) - 0.5
    r = np.hypot(fx, fy)
    if style.pattern == "dots":
        return (r < 0.22).astype(np.float32)
    petals = 0.2 + 0.1 * np.cos(5 * np.arctan2(fy, fx))  # flowers: five petals
    return (r < petals).astype(np.float32) * np.where(r < 0.07, 0.4, 1.0)


def _draw_dress(
    img: Image.Image,
    cam: Camera,
    style: DressStyle,
    shapes: DressShapes,
    fig: Figure,
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """Paint the dress, then the forearms in front of the skirt, then the sleeves. Returns the
    dress box on the canvas."""
    body = Image.new("L", img.size, 0)
    for poly in shapes.body:
        ImageDraw.Draw(body).polygon(cam(poly), fill=255)
    _paste_fabric(img, body, cam, style, shapes.profile, folds=True, rng=rng)
    draw = ImageDraw.Draw(img)
    if shapes.waist_line is not None:
        color = pixel_color(style.belt) if style.belt else pixel_color(style.color, 0.75)
        width = max(1, int(cam.scale * (0.012 if style.belt else 0.003)))
        draw.line(cam(shapes.waist_line), fill=color, width=width, joint="curve")
    for arm in fig.arms:  # forearms hang in front of the skirt
        draw.polygon(cam(arm.polygon(start=ARM_SEGMENTS[0] * 0.85)), fill=pixel_color(fig.skin))
    sleeves = Image.new("L", img.size, 0)
    for poly in shapes.sleeves:
        ImageDraw.Draw(sleeves).polygon(cam(poly), fill=255)
    if shapes.sleeves:
        _paste_fabric(img, sleeves, cam, style, shapes.profile, folds=False, rng=rng)
        body.paste(255, (0, 0), sleeves)
    return body.getbbox() or (0, 0, 1, 1)


def _paste_fabric(
    img: Image.Image,
    mask: Image.Image,
    cam: Camera,
    style: DressStyle,
    profile: tuple[np.ndarray, np.ndarray],
    *,
    folds: bool,
    rng: np.random.Generator,
) -> None:
    box = mask.getbbox()
    if box is None:
        return
    cloth = _fabric(style, cam, box, mask, profile, folds)
    if style.sparkle:
        arr = np.asarray(cloth).copy()
        n = int(arr.shape[0] * arr.shape[1] * 0.004)
        ys, xs = rng.integers(0, arr.shape[0], n), rng.integers(0, arr.shape[1], n)
        arr[ys, xs] = np.minimum(255, arr[ys, xs].astype(int) + 140)
        cloth = Image.fromarray(arr)
    img.paste(cloth, box, mask.crop(box))
    edge = ImageDraw.Draw(img)
    outline = mask.crop(box).filter(ImageFilter.FIND_EDGES)
    edge.bitmap(box[:2], outline, fill=pixel_color(style.color, 0.6))


def render_photo(
    style: DressStyle, rng: np.random.Generator, size: int
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One catalog photo of the dress and its tight box (x0, y0, x1, y1) in pixels."""
    canvas_size = 2 * size  # drawn at 2x, then reduced: cheap antialiasing
    fig = sample_figure(rng)
    shapes = dress_shapes(style, fig.arms)
    cam = place(shapes, canvas_size, rng)
    img = Image.new("RGB", (canvas_size, canvas_size))
    draw_background(img, cam, rng)
    draw_shadow(img, cam)
    draw_figure_back(img, cam, fig)
    bx0, by0, bx1, by1 = _draw_dress(img, cam, style, shapes, fig, rng)
    img = img.reduce(2)
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7)))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(
        0, rng.uniform(1.0, 4.0), (size, size, 1)
    )
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    box = (bx0 // 2, by0 // 2, min(size, -(-bx1 // 2)), min(size, -(-by1 // 2)))
    return img, box
