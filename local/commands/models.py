"""`dressvision models list|promote`: the model registry (facet models and locators)."""

from __future__ import annotations

import json

# The figure shown for each kind: the one its promotion compares.
METRICS = {"facets": "test_macro_f1", "locator": "mean_iou"}


def register(commands) -> None:
    parser = commands.add_parser("models", help="the model registry")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="saved model versions",
        description=(
            "Every saved version of each kind, oldest first, with its promotion metric. --json "
            'prints a list of {"kind", "version", "current", "metric", "value"}.'
        ),
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    promote = actions.add_parser(
        "promote",
        help="make a saved version current",
        description="Make VERSION current if it is not worse than the current one (or --force).",
    )
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--kind", choices=tuple(METRICS), default="facets")
    promote.add_argument("--force", action="store_true", help="even if it is worse (rollback)")
    promote.set_defaults(func=run_promote)


def list_models(registry) -> list[dict]:
    from shared.errors import NotFoundError
    from shared.registry import lookup_metric

    rows = []
    for kind, metric in METRICS.items():
        current = registry.current(kind)
        for version in registry.versions(kind):
            try:
                value = lookup_metric(registry.metrics(kind, version), metric)
            except (KeyError, NotFoundError):
                value = None
            rows.append(
                {
                    "kind": kind,
                    "version": version,
                    "current": version == current,
                    "metric": metric,
                    "value": value,
                }
            )
    return rows


def _registry(args):
    from local.runtime import LocalRuntime
    from shared.registry import ModelRegistry

    return ModelRegistry(LocalRuntime.open(args.home).ports.artifacts)


def run_list(args) -> int:
    from local.runtime import LocalRuntime
    from shared.registry import ModelRegistry

    runtime = LocalRuntime.open_existing(args.home)  # read-only: no state in a fresh home
    rows = list_models(ModelRegistry(runtime.ports.artifacts)) if runtime else []
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no model saved yet; run `dressvision train`")
    for row in rows:
        value = "n/a" if row["value"] is None else f"{row['value']:.4f}"
        mark = "*" if row["current"] else " "
        print(f"{mark} {row['kind']:<8} {row['version']:<22} {row['metric']} {value}")
    return 0


def run_promote(args) -> int:
    promoted = _registry(args).promote(
        args.kind, args.version, metric=METRICS[args.kind], force=args.force
    )
    print(f"{args.kind} {args.version}: {'current' if promoted else 'not promoted (worse)'}")
    return 0 if promoted else 1
