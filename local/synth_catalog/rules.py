"""The drawing rules: the body's landmarks and one rule per taxonomy label.

A facet or label without a rule here cannot be drawn: `check_drawable` refuses it. What each
label looks like is told in the package docstring.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.errors import TaxonomyError
from shared.taxonomy import Taxonomy

SILHOUETTE, NECKLINE, SLEEVE, OCCASION = "silhouette", "neckline", "sleeve", "occasion"
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


def on_shoulder(x: float) -> tuple[float, float]:
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


SILHOUETTES: dict[str, _Silhouette] = {
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
    return [(0.0, 0.2), (0.05, 0.196), on_shoulder(0.1)]


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


NECKLINES: dict[str, _Neckline] = {
    "v-neck": _Neckline(_neck_v, shoulders=True),
    "crew": _Neckline(_neck_crew, shoulders=True),
    "boat": _Neckline(_neck_boat, shoulders=True, strap_x=0.11),
    "sweetheart": _Neckline(_neck_sweetheart, shoulders=False, straps=True),
    "halter": _Neckline(_neck_halter, shoulders=False, neck_band=True),
}

# Length along the arm the sleeve covers (figure units from the shoulder joint), and how much
# its end flares. None: no sleeve.
SLEEVES: dict[str, tuple[float, float] | None] = {
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


def hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255, g * 255, b * 255)


def _pastel(rng: np.random.Generator) -> Color:
    return hsv(rng.random(), rng.uniform(0.1, 0.38), rng.uniform(0.84, 0.97))


def _saturated(rng: np.random.Generator) -> Color:
    return hsv(rng.random(), rng.uniform(0.78, 1.0), rng.uniform(0.72, 1.0))


def _named(table: tuple[tuple[float, float, float], ...], jitter: float):
    def pick(rng: np.random.Generator) -> Color:
        h, s, v = table[rng.integers(len(table))]
        return hsv(
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
OCCASIONS: dict[str, _Occasion] = {
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

RULES: dict[str, dict[str, object]] = {
    SILHOUETTE: SILHOUETTES,
    NECKLINE: NECKLINES,
    SLEEVE: SLEEVES,
    OCCASION: OCCASIONS,
}
# What one label forces on another facet, so the picture never contradicts a label.
IMPLIES: dict[tuple[str, str], tuple[str, str]] = {
    (SILHOUETTE, "ball-gown"): (OCCASION, "evening"),
    (NECKLINE, "halter"): (SLEEVE, "sleeveless"),
}
PATTERNS = ("stripes", "dots", "gingham", "flowers")


def check_drawable(taxonomy: Taxonomy) -> None:
    """Raise `TaxonomyError` unless every facet and label of `taxonomy` has a drawing rule."""
    for facet in taxonomy.facet_names:
        rules = RULES.get(facet)
        if rules is None:
            raise TaxonomyError(
                f"the synthetic catalog cannot draw facet {facet!r} (it draws "
                f"{', '.join(RULES)}); use a taxonomy without it or add rules to {__name__}"
            )
        missing = [label for label in taxonomy.labels(facet) if label not in rules]
        if missing:
            raise TaxonomyError(
                f"no drawing rule for {facet} label(s) {', '.join(map(repr, missing))}; add one "
                f"to {__name__} or use a taxonomy without it (drawable: {', '.join(rules)})"
            )
