"""Train the supervised embedder: `python -m batch_jobs.train --what similarity` (and
`dressvision train --what similarity`).

One run: export a labels snapshot, prepare every photo with the current facet model's
preprocessing (the located dress crop, one decode), start an `EmbeddingNet` from the facet
model's backbone, train it with the semi-hard triplet loss on batches of P products x K photos of
the train split (augmented per epoch), evaluate same-product retrieval on the test split for
both embedders, save the version in the registry (`similarity`: weights, preprocessing config,
metrics, args) and promote it if its test recall@5 is not worse than the current one's.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import random
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import torch

from batch_jobs.engine import amp_dtype, autocast, pick_device
from batch_jobs.facets.data import prepare_records, train_transform
from batch_jobs.facets.predictor import FacetTagger
from batch_jobs.facets.preprocess import to_model_input
from batch_jobs.similarity.embedder import (
    KIND,
    METRIC,
    SUPERVISED,
    Embedder,
    unsupervised_embedder,
)
from batch_jobs.similarity.evaluate import similarity_metrics
from batch_jobs.similarity.loss import SemiHardTripletLoss
from batch_jobs.similarity.model import DEFAULT_DIM, EmbeddingNet
from batch_jobs.snapshot import export_snapshot
from shared.errors import DressvisionError
from shared.ports import Ports
from shared.registry import ModelRegistry

log = logging.getLogger(__name__)


class SimilarityDataError(DressvisionError):
    """Nothing to train the embedder on (no facet model, or no product with two photos)."""


@dataclass
class SimilarityResult:
    version: str
    promoted: bool
    metrics: dict
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The embedder's options (prefixed, so they sit beside the facet model's)."""
    group = parser.add_argument_group("similarity embedder (--what similarity|all)")
    group.add_argument("--sim-epochs", type=int, default=10, help="default 10")
    group.add_argument("--sim-products", type=int, default=12, help="products per batch (P)")
    group.add_argument("--sim-photos", type=int, default=3, help="photos per product (K)")
    group.add_argument("--sim-lr", type=float, default=5e-4, help="AdamW peak learning rate")
    group.add_argument("--sim-margin", type=float, default=0.2, help="triplet hinge margin")
    group.add_argument("--sim-dim", type=int, default=DEFAULT_DIM, help="embedding dimension")
    group.add_argument(
        "--sim-trunk",
        choices=("frozen", "train"),
        default="frozen",
        help="frozen (default): keep the facet model's layers 1-3 and train layer4 and the "
        "projection on their cached outputs (an epoch costs a fraction); train: everything, "
        "with the facet model's augmentation",
    )


def product_batches(
    products: dict[str, list[int]], per_batch: int, photos: int, rng: random.Random
) -> list[list[int]]:
    """One epoch of P x K batches: every product once, in random order, with up to K of its
    photos drawn at random (products with one photo give no positive and are left out)."""
    names = [p for p, rows in products.items() if len(rows) >= 2]
    rng.shuffle(names)
    batches = []
    for start in range(0, len(names), per_batch):
        group = names[start : start + per_batch]
        if len(group) < 2:
            continue  # no negative for anyone
        batch = []
        for name in group:
            rows = products[name]
            batch.extend(rng.sample(rows, min(photos, len(rows))))
        batches.append(batch)
    return batches


@torch.no_grad()
def trunk_cache(
    net: EmbeddingNet,
    images: torch.Tensor,
    rows: list[int],
    config,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Layer-3 features (2, len(rows), C, H, W) of each row's crop and of its mirror image
    (a dress mirrored is the same dress: the one augmentation that survives caching)."""
    net.eval()
    views = []
    for flip in (False, True):
        chunks = []
        for start in range(0, len(rows), batch_size):
            batch = images[rows[start : start + batch_size]].to(device)
            if flip:
                batch = batch.flip(-1)
            with autocast(device, dtype):
                chunks.append(net.trunk(to_model_input(batch, config)).float().cpu())
        views.append(torch.cat(chunks))
    net.train()
    return torch.stack(views)


def train_similarity(args: argparse.Namespace, ports: Ports) -> SimilarityResult:
    """One training run, as described in the module docstring."""
    started = time.perf_counter()
    registry = ModelRegistry(ports.artifacts)
    tagger = FacetTagger.from_registry(registry, device=args.device)
    if tagger is None:
        raise SimilarityDataError(
            "the similarity embedder starts from the facet model: train it first "
            "(dressvision train)"
        )
    snapshot_key, records = export_snapshot(ports.labels, ports.artifacts)
    prepared = prepare_records(
        records,
        ports.catalog,
        ports.settings,
        tagger.config,
        locator=tagger.locator,
        workers=args.workers,
    )
    products: dict[str, list[int]] = defaultdict(list)
    for row, record in enumerate(prepared.records):
        if record.split == "train":
            products[record.product_id].append(row)
    if sum(1 for rows in products.values() if len(rows) >= 2) < 2:
        raise SimilarityDataError(
            "the embedder learns from products with at least two photos in the train split; "
            "import a catalog with several photos per product"
        )
    prepared_at = time.perf_counter()

    product_index = {name: i for i, name in enumerate(products)}
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    dtype = amp_dtype(device, bool(args.amp))
    facet_args = json.loads(registry.read("facets", tagger.version, "args.json"))
    net = EmbeddingNet(facet_args.get("arch", "resnet18"), args.sim_dim)
    net.init_backbone(tagger.model.state_dict())
    net = net.to(device, memory_format=torch.channels_last).train()
    criterion = SemiHardTripletLoss(args.sim_margin)
    frozen = args.sim_trunk == "frozen"
    if frozen:  # the facet model's layers 1-3 stay; their outputs are computed once
        for name, parameter in net.backbone.named_parameters():
            parameter.requires_grad = name.startswith("layer4.")
        rows = sorted(r for group in products.values() for r in group)
        cache = trunk_cache(net, prepared.images, rows, tagger.config, device, dtype)
        slot = {row: i for i, row in enumerate(rows)}
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.sim_lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    per_epoch = len(product_batches(products, args.sim_products, args.sim_photos, rng))
    total = max(1, per_epoch * args.sim_epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))
    )
    augment = train_transform(tagger.config.height, tagger.config.width)
    history = []
    for epoch in range(args.sim_epochs):
        losses = []
        for batch in product_batches(products, args.sim_products, args.sim_photos, rng):
            labels = torch.tensor([product_index[prepared.records[i].product_id] for i in batch])
            if frozen:
                views = torch.randint(0, cache.shape[0], (len(batch),))
                features = cache[views, torch.tensor([slot[i] for i in batch])].to(device)
                with autocast(device, dtype):
                    embeddings = net.head(features)
            else:
                images = torch.stack([augment(prepared.images[i]) for i in batch]).to(device)
                with autocast(device, dtype):
                    embeddings = net(to_model_input(images, tagger.config))
            loss = criterion(embeddings.float(), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        mean = sum(losses) / max(1, len(losses))
        if not math.isfinite(mean):
            raise FloatingPointError(f"the triplet loss became {mean}; lower --sim-lr")
        history.append({"epoch": epoch + 1, "loss": round(mean, 5)})
        log.info("embedder epoch %d/%d: loss %.4f", epoch + 1, args.sim_epochs, mean)
    trained_at = time.perf_counter()

    version = registry.new_version(KIND)
    net = net.eval()
    embedders = {
        SUPERVISED: Embedder(SUPERVISED, version, tagger.config, net, device, dtype),
        "unsupervised": unsupervised_embedder(tagger),
    }
    metrics = {
        "test": similarity_metrics(embedders, prepared, "test"),
        "facet_version": tagger.version,
        "images": {"train": sum(len(r) for r in products.values()), "all": len(prepared.records)},
        "history": history,
    }
    run_args = {
        "arch": net.arch,
        "dim": net.dim,
        "facet_version": tagger.version,
        "snapshot_key": snapshot_key,
        **{k: v for k, v in vars(args).items() if k.startswith("sim_") or k == "seed"},
    }
    registry.save(KIND, version, model_files(net, tagger, metrics, run_args))
    promoted = registry.promote(KIND, version, metric=METRIC, force=bool(args.force))
    seconds = {
        "prepare": round(prepared_at - started, 2),
        "train": round(trained_at - prepared_at, 2),
        "evaluate": round(time.perf_counter() - trained_at, 2),
        "total": round(time.perf_counter() - started, 2),
    }
    log.info("similarity model %s: %s, promoted=%s", version, metrics["test"], promoted)
    return SimilarityResult(version, promoted, metrics, seconds)


def model_files(net: EmbeddingNet, tagger, metrics: dict, run_args: dict) -> dict[str, bytes]:
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, buffer)
    return {
        "weights.pt": buffer.getvalue(),
        "preprocess.json": tagger.config.to_json(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "args.json": json.dumps(run_args, indent=2, default=str).encode(),
    }


def summary(result: SimilarityResult) -> dict:
    return {
        "version": result.version,
        "promoted": result.promoted,
        "similarity": result.metrics["test"],
        "seconds": result.seconds,
    }


def main(args: argparse.Namespace, ports: Ports) -> int:
    try:
        result = train_similarity(args, ports)
    except SimilarityDataError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary(result)))
    return 0
