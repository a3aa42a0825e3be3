"""Latency of the web app's views (issue 12, item 7).

A catalog of `--images` photos (10,000 by default) with a fake trained facet model's metrics and
predictions on the embedded backends (tests/web/fake_catalog.py: no torch), served by
`dressvision serve` (uvicorn) on 127.0.0.1. Each view is requested `--requests` times, one at a
time, after one cold request (the first one scans the catalog and fills the app's short-lived
caches; it is reported on its own as `cold_ms`). Target: p95 <= 150 ms for every view.
Writes bench/results/web.json (or `--out`).

    .venv/bin/python bench/web.py [--images 10000] [--requests 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.web.fake_catalog import build_catalog  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "web.json"
TARGET_P95_MS = 150.0


def views(catalog) -> dict[str, str]:
    """name -> path of each view, on data that exists in the catalog."""
    version = catalog.version
    image = catalog.image_ids[0]
    return {
        "models": "/models",
        "f1": f"/f1/{version}/silhouette",
        "confusion": f"/confusion/{version}/silhouette/test",
        "confusion_cell": f"/confusion/{version}/silhouette/train/a-line/a-line",
        "false_negatives": f"/errors/{version}/silhouette/a-line/fn?split=train",
        "false_positives": f"/errors/{version}/neckline/crew/fp?split=train",
        "catalog": "/catalog",
        "catalog_filtered": "/catalog?split=test&facet=sleeve&label=long",
        "catalog_invalid": "/catalog?status=invalid",
        "image": f"/catalog/{image}",
        "photo": f"/images/{image}",
        "review": "/review",
        "api_f1": f"/api/f1/{version}/silhouette",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(client: httpx.Client, path: str, requests: int) -> dict:
    start = time.perf_counter()
    first = client.get(path)
    cold_ms = 1000 * (time.perf_counter() - start)
    if first.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {first.status_code}: {first.text[:300]}")
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(path)
        times.append(1000 * (time.perf_counter() - start))
        response.raise_for_status()
    return {
        "path": path,
        "cold_ms": round(cold_ms, 1),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
        "bytes": len(first.content),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per view")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        catalog = build_catalog(home, args.images)
        build_s = time.perf_counter() - started
        server = subprocess.Popen(
            [sys.executable, "-m", "local.cli", "--home", str(home), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            line = server.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+)(/signin\?token=\S+)", line)
            if not match:
                raise RuntimeError(f"serve printed {line!r}")
            with httpx.Client(base_url=match.group(1), timeout=60) as client:
                client.get(match.group(2))  # the session cookie
                results = {
                    name: measure(client, path, args.requests)
                    for name, path in views(catalog).items()
                }
        finally:
            server.terminate()
            server.wait(timeout=10)

    worst = max(v["p95_ms"] for v in results.values())
    document = {
        "images": args.images,
        "requests_per_view": args.requests,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": worst <= TARGET_P95_MS,
        "worst_p95_ms": worst,
        "catalog_build_s": round(build_s, 1),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "views": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    for name, v in results.items():
        figures = f"p50 {v['p50_ms']:>7.1f} ms  p95 {v['p95_ms']:>7.1f} ms"
        print(f"{name:<18} {figures}  cold {v['cold_ms']:>7.1f} ms")
    print(f"worst p95 {worst:.1f} ms (target {TARGET_P95_MS:.0f}): written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
