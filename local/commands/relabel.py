"""The relabel loop on one machine: `review`, `collect`, `tasks list`, `answer`."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from decimal import Decimal

from local.runtime import LocalRuntime
from shared.backends import build_workforce
from shared.env import WORKFORCES
from shared.errors import ConfigurationError, UsageError
from shared.inference import current_model_version
from shared.relabel import (
    CollectSummary,
    answer_as_staff,
    collect,
    publish_tasks,
    review_labels,
    tasks_within_budget,
)


def _workforce_options(parser) -> None:
    parser.add_argument(
        "--workforce",
        choices=WORKFORCES,
        default=None,
        help="who answers: internal (staff, `dressvision answer`), simulated, mturk (sandbox "
        "unless DRESSVISION_MTURK_PRODUCTION=true; MTurk closed on 2026-09-30), a2i "
        "(default: $DRESSVISION_WORKFORCE, else internal)",
    )
    parser.add_argument(
        "--truth",
        metavar="CSV",
        help="simulated workers answer from this labels_true.csv (synth-catalog writes it)",
    )


def register(commands) -> None:
    review = commands.add_parser(
        "review",
        help="rank suspicious labels (and publish relabel tasks)",
        description=(
            "Rank the catalog labels the current model disagrees with (its training dynamics "
            "for the train split, its predictions for the test split), likeliest mistakes "
            "first. With --publish, "
            "send each one to people as a relabel task."
        ),
    )
    review.add_argument("--limit", type=int, default=None, help="at most N labels")
    review.add_argument(
        "--budget-tasks",
        type=int,
        default=None,
        metavar="N",
        help="spend at most N tasks, on the labels most likely wrong across all facets",
    )
    review.add_argument(
        "--budget-usd",
        type=Decimal,
        default=None,
        metavar="X",
        help="spend at most X dollars at the workforce's price per task "
        "($DRESSVISION_MAX_ASSIGNMENTS answers each; MTurk: reward plus fee)",
    )
    review.add_argument("--facet", default=None, help="only this facet")
    review.add_argument(
        "--model-version", default=None, metavar="V", help="model version (default: current)"
    )
    review.add_argument("--publish", action="store_true", help="publish relabel tasks")
    review.add_argument(
        "--json",
        action="store_true",
        help='print [{"image_id", "facet", "label", "suggested", "confidence"}]; with '
        '--publish, {"suspicious": [...], "published", "skipped", "budget_exhausted", '
        '"budget_left_usd", "labelled", "without_predictions"} (null budget for workforces '
        "without one; without_predictions: labelled images the model has no judging "
        "probabilities for, never reviewed)",
    )
    _workforce_options(review)
    review.set_defaults(func=run_review)

    collect_parser = commands.add_parser(
        "collect",
        help="collect answers, update labels, retrain when enough changed",
        description=(
            "Fetch the answers of open tasks, aggregate them with Dawid-Skene (worker "
            "reliability across tasks), update decided labels, ask for more answers or escalate "
            "to staff, and submit training once enough labels changed."
        ),
    )
    collect_parser.add_argument(
        "--json",
        action="store_true",
        help='print {"decided", "changed", "confirmed", "asked_more", "escalated", "conflicts", '
        '"waiting", "votes", "answers_received", "train_job"}, every key always (0 or null '
        "when nothing happened)",
    )
    _workforce_options(collect_parser)
    collect_parser.set_defaults(func=run_collect)

    tasks = commands.add_parser("tasks", help="relabel tasks")
    actions = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list relabel tasks")
    listing.add_argument(
        "--status", choices=("open", "decided", "escalated", "conflict", "closed"), default=None
    )
    listing.add_argument("--json", action="store_true", help="print the tasks as JSON")
    listing.set_defaults(func=run_tasks_list)

    answer = commands.add_parser(
        "answer",
        help="answer a relabel task as staff",
        description="A staff answer decides an open or escalated task and sets the label.",
    )
    answer.add_argument("task_id", metavar="TASK_ID")
    answer.add_argument("label", metavar="LABEL")
    answer.add_argument("--who", default="staff", help="who answers (kept in the label event)")
    answer.set_defaults(func=run_answer)


def _runtime_and_workforce(args):
    runtime = LocalRuntime.open(args.home)
    settings = runtime.settings
    if args.workforce:
        settings = replace(settings, workforce=args.workforce)
    if args.truth:
        settings = replace(settings, simulated_truth=str(args.truth))
    return runtime, build_workforce(settings, runtime.ports)


def other_photos(siblings: tuple[str, ...]) -> str:
    """ "  (+2 photos)": the product's other photos a task's answer also sets; "" for none."""
    n = len(siblings)
    return f"  (+{n} photo{'s' if n > 1 else ''})" if n else ""


def run_review(args) -> int:
    runtime = LocalRuntime.open(args.home)
    version = args.model_version or current_model_version(runtime.ports)
    if version is None:
        raise ConfigurationError("no facet model yet: run `dressvision train` first")
    budget = _task_budget(args, runtime)
    review = review_labels(runtime.ports, version, facet=args.facet, budget_tasks=budget)
    if warning := review.coverage_warning():
        print(f"warning: {warning}", file=sys.stderr)
    suspects = review.suspects
    if args.json and not args.publish:
        print(json.dumps([s.to_json() for s in suspects]))
        return 0
    if not args.json:
        for s in suspects:
            print(
                f"{s.image_id:<16} {s.facet:<10} {s.label:>14} -> {s.suggested:<14} "
                f"confidence {s.confidence:.2f}{other_photos(s.siblings)}"
            )
        print(f"{len(suspects)} suspicious labels (model {version})")
    if args.publish:
        _, workforce = _runtime_and_workforce(args)
        summary = publish_tasks(
            runtime.ports, workforce, suspects, max_assignments=runtime.settings.max_assignments
        )
        if args.json:
            print(
                json.dumps({**publish_json(suspects, summary, workforce), **review.coverage_json()})
            )
        else:
            print(
                f"published {summary.published} tasks to {workforce.name} "
                f"({summary.skipped} already published)"
                + ("; stopped at the budget cap" if summary.budget_exhausted else "")
            )
    return 0


def _task_budget(args, runtime) -> int | None:
    """The tasks review may spend: --limit, --budget-tasks and --budget-usd, the smallest."""
    budgets = [b for b in (args.limit, args.budget_tasks) if b is not None]
    if any(b < 0 for b in budgets):
        raise UsageError("--limit and --budget-tasks must be >= 0")
    if args.budget_usd is not None:
        if args.budget_usd < 0:
            raise UsageError("--budget-usd must be >= 0")
        _, workforce = _runtime_and_workforce(args)
        assignments = runtime.settings.max_assignments
        budgets.append(tasks_within_budget(workforce, args.budget_usd, assignments=assignments))
    return min(budgets) if budgets else None


def publish_json(suspects, summary, workforce) -> dict:
    """`review --publish --json`: what was ranked, what was published, the money left."""
    left = workforce.budget_left_usd() if hasattr(workforce, "budget_left_usd") else None
    return {
        "suspicious": [s.to_json() for s in suspects],
        "published": summary.published,
        "skipped": summary.skipped,
        "budget_exhausted": summary.budget_exhausted,
        "budget_left_usd": None if left is None else str(left),
    }


def run_collect(args) -> int:
    runtime = LocalRuntime.open(args.home)
    providers = {t.provider for t in runtime.ports.tasks.list("open")}
    if args.workforce:
        providers = {args.workforce}
    totals: dict = CollectSummary().to_json()  # every key, even when nothing is open
    for provider in sorted(providers):
        args.workforce = provider
        _, workforce = _runtime_and_workforce(args)
        for key, value in collect(runtime.ports, workforce).to_json().items():
            if isinstance(value, int):
                totals[key] += value
            elif value is not None:
                totals[key] = value
    runtime.wait_for_jobs()
    if args.json:
        print(json.dumps(totals))
    elif not providers:
        print("no open tasks")
    else:
        print(", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def run_tasks_list(args) -> int:
    runtime = LocalRuntime.open_existing(args.home)  # read-only: no state in a fresh home
    found = runtime.ports.tasks.list(args.status) if runtime else ()
    tasks = sorted(found, key=lambda t: t.created_at)
    if args.json:
        print(json.dumps([json.loads(t.model_dump_json()) for t in tasks]))
        return 0
    for t in tasks:
        votes = ",".join(v.label for v in t.votes) or "-"
        print(
            f"{t.task_id:<34} {t.status:<9} {t.provider:<9} {t.current_label or '-':>14} -> "
            f"{t.suggested:<14} votes {votes}  outcome {t.outcome or '-'}"
            f"{other_photos(t.siblings)}"
        )
    print(f"{len(tasks)} tasks", file=sys.stderr)
    return 0


def run_answer(args) -> int:
    runtime = LocalRuntime.open(args.home)
    task = runtime.ports.tasks.get(args.task_id)
    workforce = None
    if task is not None and task.external_id:  # stop the HIT / loops the task was sent to
        try:
            workforce = build_workforce(
                replace(runtime.settings, workforce=task.provider), runtime.ports
            )
        except ConfigurationError as exc:
            print(f"warning: {task.provider} is not configured ({exc})", file=sys.stderr)
    result = answer_as_staff(
        runtime.ports, args.task_id, args.label, who=args.who, workforce=workforce
    )
    print(
        {
            "changed": "label updated",
            "confirmed": "label confirmed",
            "conflict": "the label changed since the task was published; it was kept",
        }[result]
    )
    return 0
