"""Cost and time to tag a catalog on AWS, on paper (issue 17, item 7).

Every figure comes from the assumptions printed with it: the job's throughput per GPU
instance, the Spot price, the per-child overhead, the stage settings (`infra/settings.py`:
shard size, fleet size, ingest batch and concurrency) and the region's list prices. None of
them is looked up online: pass your own (`--spot-price`, `--throughput`, ...) and the JSON says
what they give. The throughput is the one figure a GPU run should replace
(`bench/inference_large.py` on a g5.xlarge); without one, two scenarios bracket it.

    .venv/bin/python bench/cost.py                          # 100,000 and 10,000,000 photos
    .venv/bin/python bench/cost.py --photos 250000 --throughput 120 --spot-price 0.40

Writes bench/results/cost.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.settings import StageSettings  # noqa: E402
from shared.keys import EMBEDDING_DIMENSIONS  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cost.json"


@dataclass(frozen=True)
class Prices:
    """us-east-1 list prices (USD) as assumed here; check them against the AWS price pages."""

    spot_gpu_hour: float = 0.45  # g5.xlarge Spot, a typical recent price (on-demand: 1.006)
    lambda_gb_second: float = 0.0000166667  # x86
    lambda_request: float = 0.20 / 1e6
    dynamodb_write_unit: float = 0.625 / 1e6  # on-demand, Standard table class
    dynamodb_read_unit: float = 0.125 / 1e6
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    s3_get: float = 0.0004 / 1000  # GET, HEAD
    s3_gb_month: float = 0.023  # S3 Standard, first 50 TB
    vectors_put_gb: float = 0.20  # S3 Vectors: logical data uploaded
    vectors_gb_month: float = 0.06  # S3 Vectors storage
    sqs_request: float = 0.40 / 1e6


@dataclass(frozen=True)
class Workload:
    """What one photo costs in requests and seconds; the defaults are this product's."""

    photo_mb: float = 1.5  # a 2000 x 3000 JPEG at quality 90 from a camera
    ingest_seconds_per_photo: float = 0.08  # S3 HEAD + GET + the 1/4-scale decode check
    child_overhead_s: float = 30.0  # container start (image cached) + model load per child
    instance_start_s: float = 300.0  # boot + first pull of the GPU job image, per instance
    # Requests per photo: ingest HEADs and GETs it, puts its label (conditional), reads its
    # label and its prediction; the job GETs it, reads its label (the index metadata), puts its
    # prediction; the review reads the prediction and the label.
    s3_gets: int = 3  # HEAD + GET by ingest, GET by the job
    dynamodb_writes: int = 2  # label + prediction (items under 1 KB: one unit each)
    dynamodb_reads: float = 2.0  # strongly consistent gets of 4 KB or less: one unit each
    sqs_requests: float = 3 / 50 * 2  # send (by S3), receive and delete, per 50-message batch


def estimate(
    photos: int,
    throughput: float,
    stage: StageSettings,
    prices: Prices,
    work: Workload,
) -> dict:
    """Cost (USD) and hours to tag `photos` uploaded at once."""
    instances = max(1, stage.max_vcpus // stage.job_vcpus)
    children = math.ceil(photos / stage.infer_shard_size)
    windows = math.ceil(photos / stage.infer_window_images)
    work_s = photos / throughput
    overhead_s = children * work.child_overhead_s + instances * work.instance_start_s
    gpu_hours = (work_s + overhead_s) / 3600
    gpu_wall_h = gpu_hours / instances
    # Ingest: ingest_max_concurrency Lambdas, each a batch of ingest_batch_size photos.
    ingest_batches = math.ceil(photos / stage.ingest_batch_size)
    batch_s = stage.ingest_batch_size * work.ingest_seconds_per_photo
    ingest_rate = stage.ingest_max_concurrency * stage.ingest_batch_size / batch_s  # photos/s
    ingest_wall_h = photos / ingest_rate / 3600
    lambda_usd = ingest_batches * (
        batch_s * 1.0 * prices.lambda_gb_second + prices.lambda_request
    )  # ingest: 1 GB (INGEST_MEMORY_MB)
    vector_bytes = sum(4 * d + 512 for d in EMBEDDING_DIMENSIONS.values())  # + metadata
    vectors_gb = photos * vector_bytes / 1e9
    costs = {
        "gpu": gpu_hours * prices.spot_gpu_hour,
        "lambda": lambda_usd,
        "dynamodb": photos
        * (
            work.dynamodb_writes * prices.dynamodb_write_unit
            + work.dynamodb_reads * prices.dynamodb_read_unit
        ),
        "s3_requests": photos * (work.s3_gets * prices.s3_get + prices.s3_put)
        + windows * 4 * prices.s3_put,  # the upload's PUT; a manifest and pending pieces
        "sqs": photos * work.sqs_requests * prices.sqs_request,
        "vectors_upload": vectors_gb * prices.vectors_put_gb,
    }
    monthly = {
        "s3_storage": photos * work.photo_mb / 1000 * prices.s3_gb_month,
        "vectors_storage": vectors_gb * prices.vectors_gb_month,
    }
    stages_h = {"ingest": ingest_wall_h, "gpu_fleet": gpu_wall_h}
    return {
        "photos": photos,
        "throughput_images_per_s": throughput,
        "array_jobs": windows,
        "children": children,
        "gpu_instance_hours": round(gpu_hours, 2),
        "gpu_hours_of_which_overhead": round(overhead_s / 3600, 2),
        "hours_wall": round(max(stages_h.values()), 2),
        "hours_per_stage": {k: round(v, 2) for k, v in stages_h.items()},
        "bottleneck": max(stages_h, key=stages_h.get),
        "usd_once": {k: round(v, 2) for k, v in costs.items()},
        "usd_once_total": round(sum(costs.values()), 2),
        "usd_per_month_after": {k: round(v, 2) for k, v in monthly.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, nargs="+", default=[100_000, 10_000_000])
    parser.add_argument(
        "--throughput",
        type=float,
        nargs="+",
        default=[97.0, 300.0],
        help="end-to-end images/s of one g5.xlarge job; default: 97 (what a 2-core CPU does at "
        "2000 x 3000 with the model on it too: a floor, since a g5.xlarge has 4 vCPUs and the "
        "GPU) and 300 (models and decoding on the GPU: unmeasured)",
    )
    parser.add_argument("--spot-price", type=float, default=Prices.spot_gpu_hour)
    parser.add_argument("--shard-size", type=int, default=StageSettings.infer_shard_size)
    parser.add_argument("--max-vcpus", type=int, default=StageSettings.max_vcpus)
    parser.add_argument(
        "--ingest-concurrency", type=int, default=StageSettings.ingest_max_concurrency
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    stage = StageSettings(
        infer_shard_size=args.shard_size,
        max_vcpus=args.max_vcpus,
        ingest_max_concurrency=args.ingest_concurrency,
    )
    prices = Prices(spot_gpu_hour=args.spot_price)
    work = Workload()
    rows = [
        estimate(n, t, stage, prices, work) for n in args.photos for t in sorted(args.throughput)
    ]
    result = {
        "assumptions": {
            "prices_usd": asdict(prices),
            "workload": asdict(work),
            "stage": {
                "gpu_instance": stage.gpu_instance_types[0],
                "max_vcpus": stage.max_vcpus,
                "job_vcpus": stage.job_vcpus,
                "infer_shard_size": stage.infer_shard_size,
                "infer_window_images": stage.infer_window_images,
                "ingest_batch_size": stage.ingest_batch_size,
                "ingest_max_concurrency": stage.ingest_max_concurrency,
            },
        },
        "estimates": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{'photos':>11} {'img/s':>6} {'GPU h':>7} {'wall h':>7} {'bottleneck':>10} "
        f"{'USD once':>9} {'USD/month':>9}"
    )
    for row in rows:
        print(
            f"{row['photos']:>11,} {row['throughput_images_per_s']:>6.0f} "
            f"{row['gpu_instance_hours']:>7.2f} {row['hours_wall']:>7.2f} "
            f"{row['bottleneck']:>10} {row['usd_once_total']:>9.2f} "
            f"{sum(row['usd_per_month_after'].values()):>9.2f}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
