"""Cold-start import time of each Lambda handler module, as Lambda runs it (issue 15, item 5).

Lambda unpacks the code asset and the dependency layer into read-only folders, so Python cannot
write the bytecode it compiles: without `.pyc` files in the assets, every cold start compiles
each module it imports from source. This script rebuilds that situation here:

- `code/`: `lambdas/` and `shared/` as the CDK bundler copies them (`infra.bundling.CopySources`);
- `layer/`: the layer's packages (`project_dependencies()` and what they require) copied from
  this environment's site-packages without their `__pycache__`;
- both made read-only, then each handler module imported in a fresh interpreter with
  `PYTHONDONTWRITEBYTECODE=1` and `code/` and `layer/` first on `sys.path` (boto3 comes with
  the runtime, precompiled, as on Lambda). The import alone is timed (`perf_counter` around
  `import_module`), median of `--runs` interpreters;
- twice: `source` (no bytecode, the assets as they were) and `bytecode` (both folders compiled
  the way the bundler now does, `compileall --invalidation-mode unchecked-hash`).

Target: <= 300 ms per handler in `bytecode`. Writes bench/results/cold_start.json.

    .venv/bin/python bench/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.bundling import (  # noqa: E402
    CopySources,
    compile_bytecode,
    project_dependencies,
    source_files,
)
from infra.constructs.lambda_package import SOURCE_FOLDERS  # noqa: E402

HANDLERS = (
    "lambdas.ingest",
    "lambdas.review",
    "lambdas.collect",
    "lambdas.batch_events",
    "lambdas.flush",
    "lambdas.similar",
    "lambdas.web",
)
TARGET_MS = 300.0
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "six"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# Wall time is what Lambda bills and users wait for; CPU time is also kept because it barely
# moves when other processes share the CPU (a figure taken on a busy machine stays usable).
TIMER = (
    "import importlib, sys, time\n"
    "start, cpu = time.perf_counter(), time.process_time()\n"
    "importlib.import_module(sys.argv[1])\n"
    "print((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000)\n"
)


def layer_distributions() -> list[importlib.metadata.Distribution]:
    """The layer's distributions and everything they require (their non-extra requirements)."""
    from packaging.requirements import Requirement

    wanted = [_NAME.match(spec).group(1) for spec in project_dependencies()]
    seen: dict[str, importlib.metadata.Distribution] = {}
    while wanted:
        name = wanted.pop().lower().replace("_", "-")
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return list(seen.values())


def copy_layer(out: Path) -> int:
    """Copy the installed files of the layer's distributions, without bytecode."""
    copied = 0
    for dist in layer_distributions():
        for file in dist.files or []:
            if "__pycache__" in file.parts or file.suffix in (".pyc", ".pyo"):
                continue
            if ".dist-info" in file.parts[0] or file.parts[0] in ("..", "bin"):
                continue
            source = Path(dist.locate_file(file))
            if source.is_file():
                target = out / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                copied += 1
    return copied


def make_read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def time_imports(code: Path, layer: Path, runs: int) -> dict[str, dict]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": f"{code}{os.pathsep}{layer}",
        # Settings are read lazily (lambdas/wiring.py); nothing at import needs AWS.
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    results = {}
    for module in HANDLERS:
        times, cpu_times = [], []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", TIMER, module],
                env=env,
                cwd=code,  # not the repository: its folders must not shadow the copies
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu = out.stdout.strip().splitlines()[-1].split()
            times.append(float(wall))
            cpu_times.append(float(cpu))
        results[module] = {
            "median_ms": round(statistics.median(times), 1),
            "median_cpu_ms": round(statistics.median(cpu_times), 1),
            "min_ms": round(min(times), 1),
            "runs_ms": [round(t, 1) for t in times],
        }
    return results


def imported_from(code: Path, layer: Path) -> dict[str, str]:
    """Where the heavy packages come from in the measured interpreter (proves the copies)."""
    probe = "import lambdas.ingest, pydantic, numpy, aws_lambda_powertools as p, json; print(json.dumps({m.__name__: m.__file__ for m in (lambdas.ingest, pydantic, numpy, p)}))"  # noqa: E501
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": f"{code}:{layer}"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=code, capture_output=True, text=True
    )
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler")
    parser.add_argument("--note", default="", help="kept in the JSON (e.g. 'machine under load')")
    parser.add_argument(
        "--code-root",
        type=Path,
        default=ROOT,
        help="the checkout whose lambdas/ and shared/ to measure (default: this one; e.g. "
        "`git archive BASE lambdas shared | tar -x -C DIR` for a before/after)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/cold_start.json")
    args = parser.parse_args()

    started = time.time()
    modes = {}
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        for mode in ("source", "bytecode"):
            code, layer = Path(tmp) / mode / "code", Path(tmp) / mode / "layer"
            CopySources(root=args.code_root, folders=SOURCE_FOLDERS).try_bundle(str(code), None)
            files = copy_layer(layer)
            if mode == "bytecode":  # what infra/bundling.py now does to both assets
                compile_bytecode(code, sys.executable)
                compile_bytecode(layer, sys.executable)
            make_read_only(code.parent)
            try:
                modes[mode] = {
                    "handlers": time_imports(code, layer, args.runs),
                    "pyc_files": sum(1 for _ in code.parent.rglob("*.pyc")),
                    "layer_files": files,
                }
                if mode == "source":
                    modes[mode]["imported_from"] = imported_from(code, layer)
            finally:
                make_writable(code.parent)
    document = {
        "command": "python bench/cold_start.py " + " ".join(sys.argv[1:]),
        "python": platform.python_version(),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.machine(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "note": args.note,
        "runs": args.runs,
        "target_ms": TARGET_MS,
        "code_root": str(args.code_root),
        "code_files": len(source_files(args.code_root, SOURCE_FOLDERS)),
        "modes": modes,
        "meets_target": all(
            h["median_ms"] <= TARGET_MS for h in modes["bytecode"]["handlers"].values()
        ),
        "seconds": round(time.time() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    for mode, result in modes.items():
        shown = ", ".join(
            f"{m.split('.')[-1]} {h['median_ms']:.0f} ms (cpu {h['median_cpu_ms']:.0f})"
            for m, h in result["handlers"].items()
        )
        print(f"{mode:<9} {shown}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
