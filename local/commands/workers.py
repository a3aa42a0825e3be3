"""`dressvision workers`: what the aggregation learned about each worker who answered."""

from __future__ import annotations

import json


def register(commands) -> None:
    parser = commands.add_parser(
        "workers",
        help="workers' estimated accuracy, likely spammers",
        description=(
            "Every worker who answered relabel tasks, as the last `collect` estimated them "
            "(Dawid-Skene across all tasks): answers, estimated accuracy, spammer score (0: "
            "the answers ignore the photo, 1: they identify the label; shown once a worker gave "
            "enough answers), likely spammer, and excluded (below "
            "DRESSVISION_MIN_WORKER_ACCURACY: MTurk keeps them out of new HITs with a "
            "qualification; for A2I and staff, remove them yourself). --json prints a list of "
            '{"provider", "worker_id", "answers", "accuracy", "spammer_score", '
            '"likely_spammer", "excluded", "updated_at"}, lowest accuracy first.'
        ),
    )
    parser.add_argument("--provider", default=None, help="only this workforce's workers")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from local.runtime import LocalRuntime

    runtime = LocalRuntime.open_existing(args.home)  # read-only: no state in a fresh home
    found = runtime.ports.tasks.workers(args.provider) if runtime else ()
    workers = sorted(found, key=lambda w: (w.accuracy, w.provider, w.worker_id))
    if args.json:
        print(json.dumps([w.to_json() for w in workers]))
        return 0
    if not workers:
        print("no worker answered yet; `dressvision collect` estimates them")
        return 0
    print(f"{'provider':<10}{'worker':<24}{'answers':>8}{'accuracy':>10}{'spammer':>9}  verdict")
    for w in workers:
        score = "-" if w.spammer_score is None else f"{w.spammer_score:.2f}"
        verdict = ", ".join(
            text
            for text, flag in (("likely spammer", w.likely_spammer), ("excluded", w.excluded))
            if flag
        )
        print(
            f"{w.provider:<10}{w.worker_id:<24}{w.answers:>8}{w.accuracy:>10.2f}{score:>9}  "
            f"{verdict or 'ok'}"
        )
    return 0
