"""A synthetic dress catalog: labelled photos for tests, demos and benchmarks.

Every facet label is drawn, so the true labels can be read off the picture alone:

- silhouette: the outline of the skirt and waist. a-line: straight trapezoid flaring from the
  waist; sheath: narrow column close to the body with a visible waist; fit-and-flare: fitted
  bodice, waist seam, then a strong bell-shaped flare; shift: straight boxy, no waist;
  ball-gown: very wide full skirt to the floor (always floor length).
- neckline: the cut of the bodice's top edge. v-neck: deep V; crew: round, high at the neck
  base; boat: wide, shallow, almost horizontal; sweetheart: strapless-looking double curve at
  the bust (thin straps); halter: straps to a band at the neck, bare shoulders (always
  sleeveless).
- sleeve: how much of the arm the fabric covers. sleeveless: none; cap: the shoulder only;
  short: the upper half of the upper arm; three-quarter: to below the elbow; long: to the wrist.
- occasion, one consistent rule of length, palette and finish. The length decides first:
  above the knee is cocktail, floor length is evening; at knee length a light pastel dress
  (usually printed) is casual and a muted solid one is work. No single cue is enough (cocktail
  and evening share colours, casual and work share the length), so the facet is not trivial.

  | occasion | length             | palette                               | finish              |
  |----------|--------------------|---------------------------------------|---------------------|
  | casual   | knee               | light pastel                          | 75% printed         |
  |          |                    |                                       | (stripes, dots,     |
  |          |                    |                                       | gingham, flowers)   |
  | work     | knee to just below | muted (navy, charcoal, grey, camel,   | solid, matte        |
  |          |                    | olive, taupe...)                      |                     |
  | cocktail | above the knee     | saturated bright, 30% jewel or black  | light sheen, rare   |
  |          |                    |                                       | sequins             |
  | evening  | floor              | jewel tones or black, 30% saturated   | satin sheen, often  |
  |          |                    |                                       | sequins             |

  Length belongs to the occasion; only ball-gown forces it (a ball-gown is always an evening
  dress), so silhouette and occasion never disagree.

Class priors are Zipf-like in the taxonomy's order (the first class most common), mixed with a
uniform share so that the rarest class keeps at least ~5%. Labels are sampled independently of
the drawing (`sample_products`), then each product gets 2-4 photos of the same dress on a model,
a mannequin or a stand, in front of varied walls, floors and props, at varied scale, position,
rotation and arm pose. Optional label noise flips a product's catalog label (the same wrong
label on all its photos); `labels_true.csv` always holds the truth. A few files are corrupt on
purpose (truncated JPEG, text named .jpg, empty file), listed in `corrupt.txt`.

Output (the import format of DESIGN.md section 3): `labels.csv` with
`image_id,path,product_id,<facets>,x0,y0,x1,y1,split` (split left empty: the system assigns it;
boxes are the tight dress box in pixels, empty for corrupt files), `labels_true.csv`,
`corrupt.txt` (one relative path per line) and `images/<product_id>/<n>.jpg`.
Everything is a function of the seed: the same seed gives the same bytes.
"""

from __future__ import annotations

import colorsys
import csv
import io
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm import tqdm

from shared.errors import InvalidImageError, TaxonomyError
from shared.ids import image_id_for
from shared.images import open_image
from shared.taxonomy import Taxonomy, load_taxonomy

SILHOUETTE, NECKLINE, SLEEVE, OCCASION = "silhouette", "neckline", "sleeve", "occasion"
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
JPEG_QUALITY = 90
MIN_CLASS_SHARE = 0.05
Color = tuple[float, float, float]  # 0..255 floats
Points = np.ndarray  # (N, 2) in figure units: x right of the body's centre, y down, 1 = height

# ---------------------------------------------------------------------------------------------
# Body landmarks (figure units: the top of the head is y=0, the soles y=1).
NECK_SIDE = (0.034, 0.158)
SHOULDER_TIP = (0.118, 0.192)
ARMPIT = (0.092, 0.245)
WAIST_Y = 0.385
SHOULDER_JOINT = (0.104, 0.205)
ARM_SEGMENTS = (0.175, 0.15, 0.065)  # upper arm, forearm, hand
ARM_WIDTHS = (0.032, 0.024, 0.017, 0.019, 0.012)  # half-widths at shoulder ... hand tip
FLOOR_HEM_Y = 0.975  # the hem's corners; its front arc reaches the floor


def _on_shoulder(x: float) -> tuple[float, float]:
    """The point of the shoulder line (neck side -> shoulder tip) at abscissa `x`."""
    (x0, y0), (x1, y1) = NECK_SIDE, SHOULDER_TIP
    return x, y0 + (x - x0) * (y1 - y0) / (x1 - x0)


# ---------------------------------------------------------------------------------------------
# Drawing rules, one per taxonomy label. A label without a rule is refused (TaxonomyError).


@dataclass(frozen=True)
class _Silhouette:
    waist: float  # half-width at the waist
    skirt: Callable[[np.ndarray], np.ndarray]  # half-width at distance d below the waist
    folds: tuple[int, float]  # number of skirt folds, shading amplitude
    boxy: bool = False  # no waist: straight from the armpit
    floor: bool = False  # always floor length
    waist_mark: bool = False  # a seam or belt at the waist


_SILHOUETTES: dict[str, _Silhouette] = {
    "a-line": _Silhouette(0.066, lambda d: 0.066 + 0.30 * d, (5, 0.07)),
    "sheath": _Silhouette(
        0.066,
        lambda d: np.interp(
            d, [0, 0.05, 0.1, 0.16, 0.35, 0.7], [0.066, 0.085, 0.094, 0.092, 0.08, 0.08]
        ),
        (3, 0.03),
    ),
    "fit-and-flare": _Silhouette(
        0.058,
        lambda d: 0.058 + 0.17 * (1 - np.exp(-d / 0.06)) + 0.07 * d,
        (7, 0.10),
        waist_mark=True,
    ),
    "shift": _Silhouette(0.104, lambda d: 0.104 + 0.02 * d, (3, 0.035), boxy=True),
    "ball-gown": _Silhouette(
        0.056,
        lambda d: 0.056 + 0.30 * (1 - np.exp(-d / 0.11)) + 0.09 * d,
        (9, 0.12),
        floor=True,
        waist_mark=True,
    ),
}


def _neck_crew() -> list[tuple[float, float]]:
    return [(0.0, 0.176), (0.016, 0.174), (0.028, 0.166), NECK_SIDE]


def _neck_v() -> list[tuple[float, float]]:
    return [(0.0, 0.262), (0.012, 0.232), (0.026, 0.19), (0.036, 0.16)]


def _neck_boat() -> list[tuple[float, float]]:
    # A bateau: wide and shallow, almost shoulder to shoulder, a band of skin above it. Drawn
    # narrower and higher, it read as a crew at the model's 128 px.
    return [(0.0, 0.2), (0.05, 0.196), _on_shoulder(0.1)]


def _neck_sweetheart() -> list[tuple[float, float]]:
    return [
        (0.0, 0.252),
        (0.01, 0.236),
        (0.024, 0.224),
        (0.042, 0.219),
        (0.06, 0.224),
        (0.078, 0.234),
    ]


def _neck_halter() -> list[tuple[float, float]]:
    return [(0.0, 0.168), (0.026, 0.162), (0.05, 0.19), (0.072, 0.222)]


@dataclass(frozen=True)
class _Neckline:
    edge: Callable[[], list[tuple[float, float]]]  # right half, from the centre outwards
    shoulders: bool  # the bodice continues over the shoulder (else it ends at the armpit)
    straps: bool = False  # thin straps from the bust to the shoulder
    neck_band: bool = False
    strap_x: float = 0.08  # sleeveless: where the shoulder strap ends


_NECKLINES: dict[str, _Neckline] = {
    "v-neck": _Neckline(_neck_v, shoulders=True),
    "crew": _Neckline(_neck_crew, shoulders=True),
    "boat": _Neckline(_neck_boat, shoulders=True, strap_x=0.11),
    "sweetheart": _Neckline(_neck_sweetheart, shoulders=False, straps=True),
    "halter": _Neckline(_neck_halter, shoulders=False, neck_band=True),
}

# Length along the arm the sleeve covers (figure units from the shoulder joint), and how much
# its end flares. None: no sleeve.
_SLEEVES: dict[str, tuple[float, float] | None] = {
    "sleeveless": None,
    "cap": (0.05, 0.012),
    "short": (0.105, 0.006),
    "three-quarter": (0.265, 0.004),
    "long": (0.33, 0.002),
}


@dataclass(frozen=True)
class _Occasion:
    hem: tuple[float, float]  # hem height range (figure units)
    palettes: tuple[tuple[float, Callable[[np.random.Generator], Color]], ...]  # (weight, fn)
    pattern: float  # probability of a printed pattern
    sheen: tuple[float, float]
    sparkle: float  # probability of sequins

    def color(self, rng: np.random.Generator) -> Color:
        weights = np.array([w for w, _ in self.palettes])
        return self.palettes[rng.choice(len(self.palettes), p=weights / weights.sum())][1](rng)


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255, g * 255, b * 255)


def _pastel(rng: np.random.Generator) -> Color:
    return _hsv(rng.random(), rng.uniform(0.1, 0.38), rng.uniform(0.84, 0.97))


def _saturated(rng: np.random.Generator) -> Color:
    return _hsv(rng.random(), rng.uniform(0.78, 1.0), rng.uniform(0.72, 1.0))


def _named(table: tuple[tuple[float, float, float], ...], jitter: float):
    def pick(rng: np.random.Generator) -> Color:
        h, s, v = table[rng.integers(len(table))]
        return _hsv(
            h + rng.uniform(-0.02, 0.02),
            s * rng.uniform(1 - jitter, 1 + jitter),
            v * rng.uniform(1 - jitter, 1 + jitter),
        )

    return pick


# navy, charcoal, grey, camel, olive, muted burgundy, slate, taupe, muted green
_muted = _named(
    (
        (0.61, 0.55, 0.36),
        (0, 0, 0.3),
        (0, 0, 0.5),
        (0.09, 0.45, 0.68),
        (0.2, 0.42, 0.42),
        (0.96, 0.45, 0.38),
        (0.58, 0.25, 0.45),
        (0.08, 0.22, 0.55),
        (0.42, 0.35, 0.36),
    ),
    0.1,
)
# emerald, sapphire, amethyst, ruby, midnight, black, teal
_jewel = _named(
    (
        (0.42, 0.8, 0.38),
        (0.62, 0.8, 0.4),
        (0.76, 0.65, 0.36),
        (0.97, 0.85, 0.38),
        (0.66, 0.6, 0.2),
        (0, 0, 0.1),
        (0.5, 0.8, 0.32),
    ),
    0.1,
)

# Each cue alone is ambiguous (cocktail and evening share colours, casual and work share the
# length); the combination in the module docstring decides.
_OCCASIONS: dict[str, _Occasion] = {
    "casual": _Occasion((0.69, 0.74), ((1, _pastel),), pattern=0.75, sheen=(0, 0), sparkle=0),
    "work": _Occasion((0.7, 0.77), ((1, _muted),), pattern=0.0, sheen=(0, 0), sparkle=0),
    "cocktail": _Occasion(
        (0.58, 0.64),
        ((0.7, _saturated), (0.3, _jewel)),
        pattern=0.0,
        sheen=(0.1, 0.3),
        sparkle=0.15,
    ),
    "evening": _Occasion(
        (FLOOR_HEM_Y, FLOOR_HEM_Y), ((0.7, _jewel), (0.3, _saturated)), 0.0, (0.3, 0.55), 0.4
    ),
}

_RULES: dict[str, dict[str, object]] = {
    SILHOUETTE: _SILHOUETTES,
    NECKLINE: _NECKLINES,
    SLEEVE: _SLEEVES,
    OCCASION: _OCCASIONS,
}
# What one label forces on another facet, so the picture never contradicts a label.
_IMPLIES: dict[tuple[str, str], tuple[str, str]] = {
    (SILHOUETTE, "ball-gown"): (OCCASION, "evening"),
    (NECKLINE, "halter"): (SLEEVE, "sleeveless"),
}
_PATTERNS = ("stripes", "dots", "gingham", "flowers")


def check_drawable(taxonomy: Taxonomy) -> None:
    """Raise `TaxonomyError` unless every facet and label of `taxonomy` has a drawing rule."""
    for facet in taxonomy.facet_names:
        rules = _RULES.get(facet)
        if rules is None:
            raise TaxonomyError(
                f"the synthetic catalog cannot draw facet {facet!r} (it draws "
                f"{', '.join(_RULES)}); use a taxonomy without it or add rules to {__name__}"
            )
        missing = [label for label in taxonomy.labels(facet) if label not in rules]
        if missing:
            raise TaxonomyError(
                f"no drawing rule for {facet} label(s) {', '.join(map(repr, missing))}; add one "
                f"to {__name__} or use a taxonomy without it (drawable: {', '.join(rules)})"
            )


# ---------------------------------------------------------------------------------------------
# Products: labels and the look of each dress, sampled without drawing anything.


@dataclass(frozen=True)
class DressStyle:
    """Everything that makes one product's dress look the way it does in all its photos."""

    silhouette: str
    neckline: str
    sleeve: str
    occasion: str
    hem_y: float
    color: Color
    pattern: str | None
    pattern_color: Color
    pattern_period: float
    pattern_angle: float
    sheen: float
    sparkle: bool
    belt: Color | None


@dataclass(frozen=True)
class Product:
    """One product: its labels (true and as the catalog states them) and its dress."""

    product_id: str
    labels: dict[str, str]  # the truth, for the taxonomy's facets
    catalog_labels: dict[str, str]  # what labels.csv says (differs under label noise)
    style: DressStyle
    photos: int


def class_prior(n_classes: int, min_share: float = MIN_CLASS_SHARE) -> np.ndarray:
    """Zipf-like probabilities (1/rank), mixed with uniform so the rarest gets `min_share`."""
    zipf = 1.0 / np.arange(1, n_classes + 1)
    zipf /= zipf.sum()
    floor = min(min_share, 1.0 / n_classes)
    mix = 0.0 if zipf[-1] >= floor else (floor - zipf[-1]) / (1.0 / n_classes - zipf[-1])
    return (1 - mix) * zipf + mix / n_classes


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _sample_labels(taxonomy: Taxonomy, rng: np.random.Generator) -> dict[str, str]:
    """True labels for every drawable facet (a facet the taxonomy lacks gets its first rule)."""
    labels = {}
    for facet, rules in _RULES.items():
        if facet in taxonomy.facets:
            choices = taxonomy.labels(facet)
            labels[facet] = choices[rng.choice(len(choices), p=class_prior(len(choices)))]
        else:
            labels[facet] = next(iter(rules))
    for (facet, label), (other, forced) in _IMPLIES.items():
        if labels[facet] == label and (
            other not in taxonomy.facets or forced in taxonomy.labels(other)
        ):
            labels[other] = forced
    return labels


def _sample_style(labels: dict[str, str], rng: np.random.Generator) -> DressStyle:
    occasion = _OCCASIONS[labels[OCCASION]]
    silhouette = _SILHOUETTES[labels[SILHOUETTE]]
    hem = FLOOR_HEM_Y if silhouette.floor else rng.uniform(*occasion.hem)
    color = occasion.color(rng)
    printed = rng.random() < occasion.pattern
    pattern = _PATTERNS[rng.integers(len(_PATTERNS))] if printed else None
    if rng.random() < 0.5:
        pattern_color: Color = (250.0, 250.0, 248.0)
    else:
        hue = colorsys.rgb_to_hsv(*(c / 255 for c in color))[0]
        pattern_color = _hsv(
            hue + rng.choice([0.0, 0.5]), rng.uniform(0.45, 0.8), rng.uniform(0.35, 0.7)
        )
    belt = None
    if silhouette.waist_mark and rng.random() < 0.4:
        belt = _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.1, 0.9))
    return DressStyle(
        silhouette=labels[SILHOUETTE],
        neckline=labels[NECKLINE],
        sleeve=labels[SLEEVE],
        occasion=labels[OCCASION],
        hem_y=float(hem),
        color=color,
        pattern=pattern,
        pattern_color=pattern_color,
        pattern_period=float(rng.uniform(0.018, 0.034)),
        pattern_angle=float(rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4])),
        sheen=float(rng.uniform(*occasion.sheen)),
        sparkle=bool(rng.random() < occasion.sparkle),
        belt=belt,
    )


def _flip(
    labels: dict[str, str], taxonomy: Taxonomy, noise: float, rng: np.random.Generator
) -> dict[str, str]:
    """Each facet's label replaced, with probability `noise`, by another class at random."""
    noisy = dict(labels)
    for facet in taxonomy.facet_names:
        draw, pick = rng.random(), rng.random()  # always both: streams stay aligned
        if draw < noise:
            others = [x for x in taxonomy.labels(facet) if x != labels[facet]]
            noisy[facet] = others[int(pick * len(others))]
    return noisy


def sample_products(
    products: int,
    seed: int,
    *,
    noise: float = 0.0,
    photos_per_product: tuple[int, int] = (2, 4),
    taxonomy: Taxonomy | None = None,
) -> list[Product]:
    """Labels, catalog labels (after noise) and dress styles of `products` products.

    Cheap (nothing is drawn). The true labels depend only on `seed` and the product's index,
    not on `noise` or `photos_per_product`.
    """
    taxonomy = taxonomy or load_taxonomy()
    check_drawable(taxonomy)
    width = max(4, len(str(products)))
    out = []
    for i in range(products):
        rng = _rng(seed, 0, i)
        drawn = _sample_labels(taxonomy, rng)
        style = _sample_style(drawn, rng)
        truth = {facet: drawn[facet] for facet in taxonomy.facet_names}
        photos = int(_rng(seed, 4, i).integers(photos_per_product[0], photos_per_product[1] + 1))
        out.append(
            Product(
                product_id=f"p{i + 1:0{width}d}",
                labels=truth,
                catalog_labels=_flip(truth, taxonomy, noise, _rng(seed, 2, i)),
                style=style,
                photos=photos,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Geometry of the figure and of the dress, in figure units.


def _mirror(right: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A symmetric outline from its right half given top to bottom (centre points included)."""
    left = [(-x, y) for x, y in reversed(right) if x > 1e-9]
    return list(right) + left


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> Points:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _thick_line(points: Sequence[tuple[float, float]], half_widths: Sequence[float]) -> Points:
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
class _Arm:
    chain: Points  # shoulder joint, elbow, wrist, hand tip

    @classmethod
    def posed(cls, side: int, spread: float, bend: float) -> _Arm:
        pts = [np.array([side * SHOULDER_JOINT[0], SHOULDER_JOINT[1]])]
        for length, angle in zip(ARM_SEGMENTS, (spread, spread - bend, spread - bend), strict=True):
            pts.append(pts[-1] + length * np.array([side * math.sin(angle), math.cos(angle)]))
        return cls(np.array(pts))

    def polygon(self, start: float = 0.0) -> Points:
        total = sum(ARM_SEGMENTS)
        s = np.linspace(start, total, 16)
        knots = np.cumsum([0.0, *ARM_SEGMENTS[:2], ARM_SEGMENTS[2] * 0.4, ARM_SEGMENTS[2] * 0.6])
        return _thick_line(_along(self.chain, s), np.interp(s, knots, ARM_WIDTHS))

    def sleeve(self, length: float, flare: float) -> Points:
        s = np.linspace(0.0, length, 10)
        widths = np.interp(s, [0, ARM_SEGMENTS[0], sum(ARM_SEGMENTS[:2])], ARM_WIDTHS[:3]) + 0.004
        widths = widths + flare * np.clip((s - length + 0.04) / 0.04, 0, 1)
        return _thick_line(_along(self.chain, s), widths)


def _dress_profile(style: DressStyle) -> tuple[np.ndarray, np.ndarray]:
    """The dress's half-width as a function of height, from the armpit to the hem."""
    sil = _SILHOUETTES[style.silhouette]
    if sil.boxy:
        y, hw = [ARMPIT[1], 0.275, WAIST_Y], [ARMPIT[0], sil.waist, sil.waist]
    else:
        y, hw = [ARMPIT[1], 0.27, 0.33, WAIST_Y], [ARMPIT[0], 0.09, 0.078, sil.waist]
    d = np.linspace(0.0, style.hem_y - WAIST_Y, 40)[1:]
    return np.concatenate([y, WAIST_Y + d]), np.concatenate([hw, sil.skirt(d)])


def _hem(style: DressStyle, half_width: float) -> list[tuple[float, float]]:
    """The hem from the right corner to the centre: a shallow arc (the skirt is round),
    scalloped by the folds of full skirts."""
    n_folds = _SILHOUETTES[style.silhouette].folds[0]
    x = np.linspace(half_width, 0.0, 24)
    y = style.hem_y + 0.055 * half_width * (1 - (x / half_width) ** 2)
    if n_folds > 4:
        y = y + 0.004 * np.abs(np.sin(n_folds * np.pi * x / half_width / 2))
    return list(zip(x.tolist(), y.tolist(), strict=True))


def _bodice_top(style: DressStyle, sleeved: bool) -> list[tuple[float, float]]:
    """The top edge of the right half, from the centre front to the armpit."""
    neck = _NECKLINES[style.neckline]
    edge = list(neck.edge())
    if not neck.shoulders:
        return [*edge, ARMPIT]
    if sleeved:
        return [*edge, SHOULDER_TIP, (0.104, 0.222), ARMPIT]
    strap = _on_shoulder(max(neck.strap_x, edge[-1][0] + 0.012))
    return [*edge, strap, (strap[0] - 0.003, 0.2), (0.084, 0.23), ARMPIT]


@dataclass(frozen=True)
class _DressShapes:
    body: list[Points]  # bodice + skirt, straps, neck band
    sleeves: list[Points]
    profile: tuple[np.ndarray, np.ndarray]
    waist_line: Points | None


def _dress_shapes(style: DressStyle, arms: Sequence[_Arm]) -> _DressShapes:
    profile_y, profile_hw = _dress_profile(style)
    sleeve = _SLEEVES[style.sleeve]
    right = _bodice_top(style, sleeve is not None)
    right += list(zip(profile_hw[1:].tolist(), profile_y[1:].tolist(), strict=True))
    right += _hem(style, float(profile_hw[-1]))[1:]
    body = [np.array(_mirror(right))]
    neck = _NECKLINES[style.neckline]
    for side in (-1, 1):
        if neck.straps:
            body.append(_thick_line([(side * 0.05, 0.226), (side * 0.082, 0.172)], [0.005, 0.005]))
    if neck.neck_band:
        body.append(np.array([(-0.03, 0.145), (0.03, 0.145), (0.029, 0.165), (-0.029, 0.165)]))
    sleeves = []
    if sleeve is not None:
        for arm in arms:
            sleeves.append(arm.sleeve(*sleeve))
            # the sleeve head: rounds the shoulder into the bodice
            sleeves.append(_ellipse(arm.chain[0, 0] * 0.95, arm.chain[0, 1] - 0.002, 0.027, 0.021))
    waist_line = None
    if _SILHOUETTES[style.silhouette].waist_mark:
        hw = float(np.interp(WAIST_Y, profile_y, profile_hw))
        waist_line = np.array([(-hw, WAIST_Y), (0, WAIST_Y + 0.004), (hw, WAIST_Y)])
    return _DressShapes(body, sleeves, (profile_y, profile_hw), waist_line)


# ---------------------------------------------------------------------------------------------
# Rendering one photo.


@dataclass
class _Camera:
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
class _Figure:
    kind: str  # model, mannequin, stand
    skin: Color
    hair: Color | None
    hair_style: str
    shoes: Color
    arms: tuple[_Arm, _Arm]


def _sample_figure(rng: np.random.Generator) -> _Figure:
    kind = ("model", "mannequin", "stand")[rng.choice(3, p=[0.6, 0.25, 0.15])]
    skin = _SKINS[rng.integers(len(_SKINS))] if kind == "model" else _MANNEQUINS[rng.integers(4)]
    arms = tuple(
        _Arm.posed(side, rng.uniform(0.1, 0.42), rng.uniform(-0.05, 0.3)) for side in (-1, 1)
    )
    return _Figure(
        kind=kind,
        skin=tuple(float(c) for c in skin),
        hair=_HAIRS[rng.integers(len(_HAIRS))] if kind == "model" else None,
        hair_style=("bun", "bob", "long")[rng.integers(3)],
        shoes=_hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.1, 0.8)),
        arms=arms,  # type: ignore[arg-type]
    )


def _rgb(color: Color, factor: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in color)  # type: ignore[return-value]


def _place(shapes: _DressShapes, size: int, rng: np.random.Generator) -> _Camera:
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
    return _Camera(rot * scale, offset)


def _draw_background(img: Image.Image, cam: _Camera, rng: np.random.Generator) -> None:
    size = img.width
    draw = ImageDraw.Draw(img)
    wall = np.array(_WALLS[rng.integers(len(_WALLS))], dtype=float)
    feet_y = cam.array(np.array([[0.0, 1.0]]))[0, 1]
    studio = rng.random() < 0.25
    floor_y = size + 1 if studio else feet_y - rng.uniform(0.03, 0.16) * cam.scale
    shade = np.linspace(1.04, 0.9, 16) if not studio else np.linspace(1.0, 0.86, 16)
    for k, f in enumerate(shade):  # a soft vertical light gradient
        y0 = int(k * size / len(shade))
        draw.rectangle([0, y0, size, size], fill=_rgb(tuple(wall), f))
    if floor_y < size:
        floor = _FLOORS[rng.integers(len(_FLOORS))]
        draw.rectangle([0, floor_y, size, size], fill=_rgb(floor))
        if rng.random() < 0.5:  # a skirting board
            draw.rectangle([0, floor_y - 0.02 * cam.scale, size, floor_y], fill=_rgb(wall, 1.1))
        if rng.random() < 0.5:  # planks
            gap = 0.06 * cam.scale
            for k in range(1, 12):
                y = floor_y + gap * k * (1 + 0.15 * k)
                draw.line([(0, y), (size, y)], fill=_rgb(floor, 0.88), width=max(1, size // 256))
    for _ in range(rng.integers(0, 3)):
        prop = ("plant", "frame", "lamp")[rng.integers(3)]
        _PROPS[prop](draw, cam, rng, min(floor_y, size * 0.98))


def _prop_x(cam: _Camera, rng: np.random.Generator, size: int) -> float:
    """A prop's centre: left or right of the figure, not behind it."""
    centre = cam.array(np.array([[0.0, 0.5]]))[0, 0]
    side = rng.choice([-1, 1])
    x = centre + side * rng.uniform(0.35, 0.7) * cam.scale
    return float(x if 0 < x < size else centre - side * rng.uniform(0.35, 0.7) * cam.scale)


def _draw_plant(draw: ImageDraw.ImageDraw, cam: _Camera, rng: np.random.Generator, ground: float):
    s = cam.scale * rng.uniform(0.7, 1.1)
    x = _prop_x(cam, rng, draw.im.size[0])
    pot = _rgb(((190, 100, 60), (235, 235, 230), (60, 60, 60))[rng.integers(3)])
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
    green = _hsv(rng.uniform(0.25, 0.4), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.6))
    for _ in range(rng.integers(7, 13)):
        a = rng.uniform(-1.2, 1.2)
        length = rng.uniform(0.12, 0.25) * s
        tip = (x + math.sin(a) * length, ground - h - math.cos(a) * length)
        mid = ((x + tip[0]) / 2, (ground - h + tip[1]) / 2)
        nx, ny = math.cos(a) * 0.025 * s, -math.sin(a) * 0.025 * s
        draw.polygon(
            [(x, ground - h), (mid[0] + nx, mid[1] + ny), tip, (mid[0] - nx, mid[1] - ny)],
            fill=_rgb(green, rng.uniform(0.8, 1.2)),
        )


def _draw_frame(draw: ImageDraw.ImageDraw, cam: _Camera, rng: np.random.Generator, ground: float):
    s = cam.scale * rng.uniform(0.6, 1.0)
    x = _prop_x(cam, rng, draw.im.size[0])
    w, h = rng.uniform(0.15, 0.3) * s, rng.uniform(0.15, 0.3) * s
    y = ground - rng.uniform(0.55, 0.8) * cam.scale
    border = _rgb(((40, 30, 25), (230, 230, 228), (180, 140, 60), (120, 80, 50))[rng.integers(4)])
    draw.rectangle([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=border)
    pad = 0.015 * s
    inner = _hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.4, 0.95))
    draw.rectangle(
        [x - w / 2 + pad, y - h / 2 + pad, x + w / 2 - pad, y + h / 2 - pad], fill=_rgb(inner)
    )
    accent = _hsv(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))
    r = min(w, h) * rng.uniform(0.12, 0.25)
    cx, cy = x + rng.uniform(-0.2, 0.2) * w, y + rng.uniform(-0.2, 0.2) * h
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rgb(accent))


def _draw_lamp(draw: ImageDraw.ImageDraw, cam: _Camera, rng: np.random.Generator, ground: float):
    s = cam.scale * rng.uniform(0.8, 1.1)
    x = _prop_x(cam, rng, draw.im.size[0])
    top = ground - 0.7 * s
    metal = _rgb(((40, 40, 40), (180, 160, 110), (200, 200, 200))[rng.integers(3)])
    draw.rectangle([x - 0.006 * s, top, x + 0.006 * s, ground], fill=metal)
    draw.ellipse([x - 0.05 * s, ground - 0.012 * s, x + 0.05 * s, ground + 0.006 * s], fill=metal)
    shade = _rgb(_hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.3), rng.uniform(0.75, 0.98)))
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


def _draw_shadow(img: Image.Image, cam: _Camera) -> None:
    """A soft shadow on the floor under the feet."""
    (x, y), s = cam.array(np.array([[0.0, 1.0]]))[0], cam.scale
    rx, ry = 0.22 * s, 0.03 * s
    pad = int(ry * 2 + 4)
    box = (int(x - rx - pad), int(y - ry - pad), int(x + rx + pad), int(y + ry + pad))
    patch = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(patch).ellipse([pad, pad, patch.width - pad, patch.height - pad], fill=90)
    patch = patch.filter(ImageFilter.GaussianBlur(ry * 0.8))
    img.paste((30, 30, 30), box, patch)


def _draw_figure_back(img: Image.Image, cam: _Camera, fig: _Figure) -> None:
    """Everything the dress covers or sits in front of: hair, legs, torso, neck, head, arms."""
    draw = ImageDraw.Draw(img)
    skin, shadow = _rgb(fig.skin), _rgb(fig.skin, 0.85)
    if fig.hair and fig.hair_style == "long":
        draw.polygon(
            cam([(-0.05, 0.05), (0.05, 0.05), (0.06, 0.2), (-0.06, 0.2)]), fill=_rgb(fig.hair)
        )
    if fig.kind == "stand":
        metal = (60, 60, 64)
        draw.polygon(cam([(-0.008, 0.5), (0.008, 0.5), (0.008, 0.99), (-0.008, 0.99)]), fill=metal)
        draw.polygon(cam(_ellipse(0.0, 0.99, 0.08, 0.012)), fill=metal)
    else:
        for side in (-1, 1):
            leg = [(side * 0.048, 0.48), (side * 0.036, 0.72), (side * 0.03, 0.955)]
            draw.polygon(cam(_thick_line(leg, [0.048, 0.029, 0.018])), fill=shadow)
            if fig.kind == "model":
                draw.polygon(cam(_ellipse(side * 0.036, 0.975, 0.022, 0.022)), fill=_rgb(fig.shoes))
            else:
                draw.polygon(cam(_ellipse(side * 0.034, 0.972, 0.02, 0.02)), fill=shadow)
    torso = _mirror(
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
        draw.polygon(cam(_ellipse(side * 0.1, 0.205, 0.03, 0.025)), fill=skin)
    draw.polygon(cam([(-0.025, 0.09), (0.025, 0.09), (0.027, 0.17), (-0.027, 0.17)]), fill=shadow)
    _draw_head(draw, cam, fig)
    for arm in fig.arms:
        draw.polygon(cam(arm.polygon()), fill=skin)


def _draw_head(draw: ImageDraw.ImageDraw, cam: _Camera, fig: _Figure) -> None:
    skin = _rgb(fig.skin)
    if fig.kind == "stand":  # a dress form: a neck cap instead of a head
        draw.polygon(cam(_ellipse(0.0, 0.1, 0.03, 0.012)), fill=(60, 60, 64))
        return
    if fig.hair is None:  # a mannequin's egg head
        draw.polygon(cam(_ellipse(0.0, 0.064, 0.042, 0.058)), fill=skin)
        return
    hair = _rgb(fig.hair)
    if fig.hair_style == "bun":
        draw.polygon(cam(_ellipse(0.0, 0.006, 0.026, 0.02)), fill=hair)
    draw.polygon(
        cam(_ellipse(0.0, 0.056, 0.05, 0.058 if fig.hair_style != "bob" else 0.066)), fill=hair
    )
    draw.polygon(cam(_ellipse(0.0, 0.072, 0.039, 0.05)), fill=skin)


def _fabric(
    style: DressStyle,
    cam: _Camera,
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
    n_folds, amplitude = _SILHOUETTES[style.silhouette].folds
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
    cam: _Camera,
    style: DressStyle,
    shapes: _DressShapes,
    fig: _Figure,
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
        color = _rgb(style.belt) if style.belt else _rgb(style.color, 0.75)
        width = max(1, int(cam.scale * (0.012 if style.belt else 0.003)))
        draw.line(cam(shapes.waist_line), fill=color, width=width, joint="curve")
    for arm in fig.arms:  # forearms hang in front of the skirt
        draw.polygon(cam(arm.polygon(start=ARM_SEGMENTS[0] * 0.85)), fill=_rgb(fig.skin))
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
    cam: _Camera,
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
    edge.bitmap(box[:2], outline, fill=_rgb(style.color, 0.6))


def render_photo(
    style: DressStyle, rng: np.random.Generator, size: int
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One catalog photo of the dress and its tight box (x0, y0, x1, y1) in pixels."""
    canvas_size = 2 * size  # drawn at 2x, then reduced: cheap antialiasing
    fig = _sample_figure(rng)
    shapes = _dress_shapes(style, fig.arms)
    cam = _place(shapes, canvas_size, rng)
    img = Image.new("RGB", (canvas_size, canvas_size))
    _draw_background(img, cam, rng)
    _draw_shadow(img, cam)
    _draw_figure_back(img, cam, fig)
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


# ---------------------------------------------------------------------------------------------
# The catalog on disk.


@dataclass(frozen=True)
class CatalogSummary:
    """What `generate_catalog` wrote."""

    root: Path
    labels_csv: Path
    labels_true_csv: Path
    corrupt_txt: Path
    products: int
    images: int
    corrupt: tuple[str, ...]  # paths relative to root
    flipped_labels: int  # (product, facet) pairs whose catalog label is wrong
    class_counts: dict[str, dict[str, int]]  # true labels per facet, counted per product
    seconds: float


def _corrupt_bytes(kind: str, jpeg: bytes, rng: np.random.Generator) -> bytes:
    if kind == "truncated-jpeg":
        return jpeg[: int(len(jpeg) * rng.uniform(0.3, 0.7))]
    if kind == "text":
        return b"This is not a photo. Product sheet: see the website.\n"
    return b""


CORRUPT_KINDS = ("truncated-jpeg", "text", "empty")


def _default_corrupt(products: int, images: int) -> int:
    share = round(0.01 * images)
    return max(share, 1) if products >= 10 else share


def _check_args(products: int, noise: float, image_size: int, photos: tuple[int, int]) -> None:
    if products < 1:
        raise ValueError(f"products must be at least 1, got {products}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise is a probability between 0 and 1, got {noise}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 pixels, got {image_size}")
    if not 1 <= photos[0] <= photos[1]:
        raise ValueError(
            f"photos_per_product must be (low, high) with 1 <= low <= high, got {photos}"
        )


def generate_catalog(
    out: Path,
    *,
    products: int,
    seed: int,
    noise: float = 0.0,
    image_size: int = 256,
    photos_per_product: tuple[int, int] = (2, 4),
    corrupt: int | None = None,
    progress: bool = False,
) -> CatalogSummary:
    """Write a synthetic catalog folder (images + labels.csv) under `out`; see the module doc.

    `out` must be empty or absent. `corrupt` is the number of deliberately broken files
    (default: about 1% of the images, at least one from 10 products on).
    """
    _check_args(products, noise, image_size, photos_per_product)
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder or delete it first")
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy()
    catalog = sample_products(
        products, seed, noise=noise, photos_per_product=photos_per_product, taxonomy=taxonomy
    )
    slots = [(p.product_id, n) for p in catalog for n in range(1, p.photos + 1)]
    n_corrupt = _default_corrupt(products, len(slots)) if corrupt is None else corrupt
    if not 0 <= n_corrupt <= len(slots):
        raise ValueError(f"corrupt must be between 0 and the number of images ({len(slots)})")
    picks = _rng(seed, 3).choice(len(slots), size=n_corrupt, replace=False)
    broken = {slots[k]: CORRUPT_KINDS[i % len(CORRUPT_KINDS)] for i, k in enumerate(sorted(picks))}

    rows, true_rows, corrupt_paths = [], [], []
    bar = tqdm(catalog, disable=not progress, unit="product", desc="synth catalog")
    for index, product in enumerate(bar):
        for n in range(1, product.photos + 1):
            rng = _rng(seed, 1, index, n)
            img, box = render_photo(product.style, rng, image_size)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=JPEG_QUALITY)
            data, kind = buf.getvalue(), broken.get((product.product_id, n))
            rel = f"images/{product.product_id}/{n}.jpg"
            if kind:
                data, box = _corrupt_bytes(kind, data, rng), None
                corrupt_paths.append(rel)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
            base = {
                "image_id": image_id_for(product.product_id, f"{n}.jpg"),
                "path": rel,
                "product_id": product.product_id,
                "split": "",
            }
            base.update(zip(BOX_COLUMNS, box or ("",) * 4, strict=True))
            rows.append(base | product.catalog_labels)
            true_rows.append(base | product.labels)

    columns = ["image_id", "path", "product_id", *taxonomy.facet_names, *BOX_COLUMNS, "split"]
    _write_csv(out / "labels.csv", columns, rows)
    _write_csv(out / "labels_true.csv", columns, true_rows)
    (out / "corrupt.txt").write_text("".join(f"{p}\n" for p in corrupt_paths))
    counts = {f: dict(Counter(p.labels[f] for p in catalog)) for f in taxonomy.facet_names}
    return CatalogSummary(
        root=out,
        labels_csv=out / "labels.csv",
        labels_true_csv=out / "labels_true.csv",
        corrupt_txt=out / "corrupt.txt",
        products=products,
        images=len(rows),
        corrupt=tuple(corrupt_paths),
        flipped_labels=sum(p.labels[f] != p.catalog_labels[f] for p in catalog for f in p.labels),
        class_counts=counts,
        seconds=time.perf_counter() - started,
    )


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Looking at it.


def make_contact_sheet(
    catalog_dir: Path, out_png: Path, n: int = 48, *, thumb: int = 192, columns: int = 8
) -> Path:
    """Tile the first `n` photos of a catalog with their labels and dress boxes drawn.

    A catalog label that differs from `labels_true.csv` is shown in red with the truth after it;
    a file that does not load shows why.
    """
    catalog_dir = Path(catalog_dir)
    rows = _read_csv(catalog_dir / "labels.csv")[:n]
    truth = {r["image_id"]: r for r in _read_csv(catalog_dir / "labels_true.csv")}
    facets = (
        [c for c in rows[0] if c not in ("image_id", "path", "product_id", "split", *BOX_COLUMNS)]
        if rows
        else []
    )
    text_h = 14 * (len(facets) + 1) + 4
    cols = max(1, min(columns, len(rows)))
    sheet = Image.new(
        "RGB", (cols * thumb, max(1, -(-len(rows) // cols)) * (thumb + text_h)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for k, row in enumerate(rows):
        x, y = (k % cols) * thumb, (k // cols) * (thumb + text_h)
        _contact_tile(sheet, draw, font, (x, y), thumb, catalog_dir, row)
        true = truth.get(row["image_id"], row)
        lines = [(row["image_id"], (0, 0, 0))]
        for f in facets:
            wrong = true.get(f) != row[f]
            lines.append(
                (
                    f"{f[:4]}: {row[f]}" + (f" (true {true[f]})" if wrong else ""),
                    (200, 0, 0) if wrong else (40, 40, 40),
                )
            )
        for j, (line, color) in enumerate(lines):
            draw.text((x + 4, y + thumb + 2 + 14 * j), line, fill=color, font=font)
    out_png = Path(out_png)
    sheet.save(out_png)
    return out_png


def _contact_tile(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    font,
    origin: tuple[int, int],
    thumb: int,
    catalog_dir: Path,
    row: dict[str, str],
) -> None:
    x, y = origin
    try:
        img = open_image(catalog_dir / row["path"])
    except InvalidImageError as exc:
        draw.rectangle([x + 2, y + 2, x + thumb - 3, y + thumb - 3], fill=(90, 90, 90))
        draw.multiline_text(
            (x + 8, y + 8),
            "invalid:\n"
            + "\n".join(exc.reason[i : i + 28] for i in range(0, min(len(exc.reason), 112), 28)),
            fill="white",
            font=font,
        )
        return
    factor = thumb / max(img.size)
    sheet.paste(img.resize((round(img.width * factor), round(img.height * factor))), (x, y))
    if row.get("x0"):
        b = [float(row[c]) * factor for c in BOX_COLUMNS]
        draw.rectangle([x + b[0], y + b[1], x + b[2] - 1, y + b[3] - 1], outline=(255, 0, 0))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
