"""Records stored in the tables. Pydantic models: validated at every boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Split = Literal["train", "test"]


class ImageStatus(StrEnum):
    OK = "ok"
    INVALID = "invalid"


class LabelSource(StrEnum):
    CATALOG = "catalog"
    STAFF = "staff"
    CROWD = "crowd"


def utcnow() -> datetime:
    return datetime.now(UTC)


# x0, y0, x1, y1 in pixels of the upright image (EXIF orientation applied, as open_image gives)
BBox = tuple[float, float, float, float]


class LabelRecord(BaseModel):
    """One catalog image and its current labels. `version` is the optimistic-lock counter."""

    # defer_build: validators are built on first use, so a Lambda builds only those it
    # uses, after its cold-start import (bench/cold_start.py).
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    image_id: str
    product_id: str
    object_key: str
    split: Split
    facets: dict[str, str | None] = Field(default_factory=dict)
    sources: dict[str, LabelSource] = Field(default_factory=dict)
    bbox: BBox | None = None
    width: int | None = None
    height: int | None = None
    status: ImageStatus = ImageStatus.OK
    reason: str | None = None
    etag: str | None = None
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("bbox")
    @classmethod
    def _box_is_ordered(cls, box: BBox | None) -> BBox | None:
        if box is not None and not (box[0] < box[2] and box[1] < box[3]):
            raise ValueError(f"bbox must satisfy x0 < x1 and y0 < y1, got {box}")
        return box


class LabelEvent(BaseModel):
    """One change to a label: nothing is lost and every label can be traced."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    image_id: str
    facet: str
    old: str | None
    new: str | None
    source: LabelSource
    evidence: dict = Field(default_factory=dict)  # votes, task id, who, ...
    version: int  # the record's version after this change
    at: datetime = Field(default_factory=utcnow)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class FacetPrediction(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    label: str
    prob: Probability
    probs: list[Probability]  # the full vector, in the taxonomy's order


class PredictionRecord(BaseModel):
    """What one model version says about one image."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    image_id: str
    model_version: str
    facets: dict[str, FacetPrediction] = Field(default_factory=dict)
    bbox: BBox | None = None
    bbox_score: float | None = None
    embedding_key: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
