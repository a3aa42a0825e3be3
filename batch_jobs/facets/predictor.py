"""A registered facet model ready to tag photos: its network, preprocessing config, labels and
(when it was trained on crops) the very locator version it was trained with.

`FacetTagger` is what the infer job, `dressvision tag` and evaluation share, so every path from
a photo to a prediction is the same code.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from batch_jobs.engine import amp_dtype, pick_device
from batch_jobs.facets.data import Loaded, locate_photos, prepare_many, prepare_photo
from batch_jobs.facets.engine import forward_probs
from batch_jobs.facets.model import FacetNet
from batch_jobs.facets.preprocess import PreprocessConfig, to_model_input
from batch_jobs.models import create_model
from shared.images import Photo
from shared.records import FacetPrediction, PredictionRecord
from shared.registry import ModelKind, ModelRegistry
from shared.taxonomy import Taxonomy

log = logging.getLogger(__name__)

KIND = "facets"
METRIC = "test_macro_f1"


def load_locator(registry: ModelRegistry, version: str | None) -> Any | None:
    """The locator `version` (or the current one when None); None when there is none."""
    from batch_jobs.locator import Locator  # torch model of the locator: load only when used

    return Locator.from_registry(registry, version=version)


@dataclass
class Tagged:
    """What the model says about one photo."""

    facets: dict[str, FacetPrediction]
    box: tuple[float, float, float, float] | None
    box_score: float | None


class FacetTagger:
    """Photos in, facet predictions out: locate (when the model was trained on crops), crop,
    resize, normalise, forward. Build with `from_registry`."""

    def __init__(
        self,
        model: FacetNet,
        config: PreprocessConfig,
        taxonomy: Taxonomy,
        *,
        version: str | None = None,
        locator: Any | None = None,
        device: torch.device | None = None,
        amp: bool = True,
    ):
        if config.crop is not None and locator is None:
            raise ValueError(
                f"the facet model crops with locator {config.crop.locator_version}; load it "
                "(FacetTagger.from_registry does)"
            )
        self.device = device or torch.device("cpu")
        self.dtype = amp_dtype(self.device, amp)
        memory = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory).eval()
        self.config = config
        self.taxonomy = taxonomy
        self.version = version
        self.locator = locator

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        version: str | None = None,
        *,
        device: str = "auto",
        amp: bool = True,
    ) -> FacetTagger | None:
        """The facet model `version` (default: the current one); None when none is current."""
        version = version or registry.current(KIND)
        if version is None:
            return None
        files = {
            name: registry.read(KIND, version, name)
            for name in ("weights.pt", "preprocess.json", "taxonomy.json", "args.json")
        }
        return cls.from_files(files, version=version, registry=registry, device=device, amp=amp)

    @classmethod
    def from_files(
        cls,
        files: Mapping[str, bytes],
        *,
        version: str | None,
        registry: ModelRegistry | None = None,
        device: str = "auto",
        amp: bool = True,
    ) -> FacetTagger:

        config = PreprocessConfig.from_json(files["preprocess.json"])
        taxonomy = Taxonomy.from_mapping(json.loads(files["taxonomy.json"]))
        args = json.loads(files["args.json"])
        heads = {facet: len(labels) for facet, labels in taxonomy.facets.items()}
        model = create_model(ModelKind.FACETS, args["arch"], heads=heads, stn=bool(args.get("stn")))
        state = torch.load(io.BytesIO(files["weights.pt"]), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        locator = None
        if config.crop is not None:
            if registry is None:
                raise ValueError("a cropping facet model needs the registry to load its locator")
            locator = load_locator(registry, config.crop.locator_version)
        return cls(
            model,
            config,
            taxonomy,
            version=version,
            locator=locator,
            device=pick_device(device),
            amp=amp,
        )

    @property
    def facets(self) -> tuple[str, ...]:
        return self.taxonomy.facet_names

    def locate(self, images: Sequence[Image.Image | Loaded | Photo]) -> tuple[list, list]:
        """The located boxes (full-size pixels) and their scores; Nones when the model does not
        crop."""
        if self.config.crop is None or not images:
            return [None] * len(images), [None] * len(images)
        located = locate_photos(list(images), self.locator)
        return [tuple(found.box) for found in located], [float(found.score) for found in located]

    def prepare(
        self, images: Sequence[Image.Image | Loaded | Photo], pool: ThreadPoolExecutor | None = None
    ) -> tuple[Tensor, list, list]:
        """uint8 (N, 3, H, W) model inputs, the located boxes and their scores. Photos not yet
        decoded are decoded at the scale their crop needs, in `pool` when given."""
        boxes, scores = self.locate(images)
        batch = crops(images, boxes, self.config, pool)
        empty = torch.empty((0, 3, self.config.height, self.config.width), dtype=torch.uint8)
        stacked = torch.stack(batch) if batch else empty
        return stacked, boxes, scores

    def probs(self, prepared: Tensor) -> dict[str, np.ndarray]:
        """`{facet: float32 (N, C)}` for prepared uint8 images."""
        if len(prepared) == 0:
            return {f: np.zeros((0, len(self.taxonomy.labels(f))), np.float32) for f in self.facets}
        inputs = to_model_input(prepared.to(self.device), self.config)
        with torch.inference_mode():
            out = forward_probs(self.model, inputs, self.device, self.dtype)
        return {facet: probs.cpu().numpy() for facet, probs in out.items()}

    def tag(
        self, images: Sequence[Image.Image | Loaded | Photo], pool: ThreadPoolExecutor | None = None
    ) -> list[Tagged]:
        """Predictions for photos (decoded RGB images, or not yet decoded), one `Tagged` each."""
        prepared, boxes, scores = self.prepare(images, pool)
        probs = self.probs(prepared)
        return [
            Tagged(facet_predictions(probs, i, self.taxonomy), boxes[i], scores[i])
            for i in range(len(images))
        ]

    def record(self, image_id: str, tagged: Tagged) -> PredictionRecord:
        """The PredictionStore record of one tagged photo under this model version."""
        if self.version is None:
            raise ValueError("only a registered model version can store predictions")
        return prediction_record(image_id, self.version, tagged)


def crops(
    images: Sequence[Image.Image | Loaded | Photo],
    boxes: Sequence,
    config: PreprocessConfig,
    pool: ThreadPoolExecutor | None = None,
) -> list[Tensor]:
    """`prepare_photo` of every image with its box; raises the first photo's decoding error."""
    if pool is None:
        return [prepare_photo(img, config, box) for img, box in zip(images, boxes, strict=True)]
    made = prepare_many(images, boxes, config, pool)
    for item in made:
        if isinstance(item, Exception):
            raise item
    return made


def facet_predictions(
    probs: Mapping[str, np.ndarray], row: int, taxonomy: Taxonomy
) -> dict[str, FacetPrediction]:
    """The FacetPrediction of every facet for row `row` of batched probabilities."""
    out = {}
    for facet, matrix in probs.items():
        vector = np.clip(matrix[row].astype(float), 0.0, 1.0)
        best = int(vector.argmax())
        out[facet] = FacetPrediction(
            label=taxonomy.labels(facet)[best], prob=float(vector[best]), probs=vector.tolist()
        )
    return out


def prediction_record(image_id: str, version: str, tagged: Tagged) -> PredictionRecord:
    return PredictionRecord(
        image_id=image_id,
        model_version=version,
        facets=tagged.facets,
        bbox=tagged.box,
        bbox_score=tagged.box_score,
    )
