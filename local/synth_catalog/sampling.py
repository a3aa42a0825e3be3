"""Label sampling: each product's true and catalog labels and the look of its dress, drawn
from the seed without drawing any picture."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from local.synth_catalog.rules import (
    FLOOR_HEM_Y,
    IMPLIES,
    NECKLINE,
    OCCASION,
    OCCASIONS,
    PATTERNS,
    RULES,
    SILHOUETTE,
    SILHOUETTES,
    SLEEVE,
    Color,
    check_drawable,
    hsv,
)
from shared.taxonomy import Taxonomy, load_taxonomy

MIN_CLASS_SHARE = 0.05


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


def seeded_rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _sample_labels(taxonomy: Taxonomy, rng: np.random.Generator) -> dict[str, str]:
    """True labels for every drawable facet (a facet the taxonomy lacks gets its first rule)."""
    labels = {}
    for facet, rules in RULES.items():
        if facet in taxonomy.facets:
            choices = taxonomy.labels(facet)
            labels[facet] = choices[rng.choice(len(choices), p=class_prior(len(choices)))]
        else:
            labels[facet] = next(iter(rules))
    for (facet, label), (other, forced) in IMPLIES.items():
        if labels[facet] == label and (
            other not in taxonomy.facets or forced in taxonomy.labels(other)
        ):
            labels[other] = forced
    return labels


def _sample_style(labels: dict[str, str], rng: np.random.Generator) -> DressStyle:
    occasion = OCCASIONS[labels[OCCASION]]
    silhouette = SILHOUETTES[labels[SILHOUETTE]]
    hem = FLOOR_HEM_Y if silhouette.floor else rng.uniform(*occasion.hem)
    color = occasion.color(rng)
    printed = rng.random() < occasion.pattern
    pattern = PATTERNS[rng.integers(len(PATTERNS))] if printed else None
    if rng.random() < 0.5:
        pattern_color: Color = (250.0, 250.0, 248.0)
    else:
        hue = colorsys.rgb_to_hsv(*(c / 255 for c in color))[0]
        pattern_color = hsv(
            hue + rng.choice([0.0, 0.5]), rng.uniform(0.45, 0.8), rng.uniform(0.35, 0.7)
        )
    belt = None
    if silhouette.waist_mark and rng.random() < 0.4:
        belt = hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.1, 0.9))
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
        rng = seeded_rng(seed, 0, i)
        drawn = _sample_labels(taxonomy, rng)
        style = _sample_style(drawn, rng)
        truth = {facet: drawn[facet] for facet in taxonomy.facet_names}
        photos = int(
            seeded_rng(seed, 4, i).integers(photos_per_product[0], photos_per_product[1] + 1)
        )
        out.append(
            Product(
                product_id=f"p{i + 1:0{width}d}",
                labels=truth,
                catalog_labels=_flip(truth, taxonomy, noise, seeded_rng(seed, 2, i)),
                style=style,
                photos=photos,
            )
        )
    return out
