"""The answer rules every workforce applies: untrusted answers are validated, deduplicated and
capped before they become votes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.env import Settings
from shared.ports import RawAnswer
from shared.tasks import RelabelTask
from shared.workforce.base import accept_votes

T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)


def task(max_assignments: int = 3) -> RelabelTask:
    return RelabelTask.new(
        image_id="p1/front",
        facet="sleeve",
        round=1,
        allowed=("sleeveless", "cap", "short", "three-quarter", "long"),
        current_label="long",
        label_version=2,
        suggested="short",
        confidence=0.9,
        provider="mturk",
        max_assignments=max_assignments,
    )


def answer(n: int, label: object, worker: str | None = None) -> RawAnswer:
    return RawAnswer(
        f"W{n}" if worker is None else worker, f"A{n}", label, T0 + timedelta(minutes=n)
    )


def test_valid_answers_become_votes_oldest_first():
    votes = accept_votes(task(), [answer(2, "short"), answer(1, "long")])

    assert [(v.worker_id, v.label, v.assignment_id, v.at) for v in votes] == [
        ("W1", "long", "A1", T0 + timedelta(minutes=1)),
        ("W2", "short", "A2", T0 + timedelta(minutes=2)),
    ]


def test_labels_outside_allowed_are_dropped_and_logged_with_the_worker(caplog):
    answers = [
        answer(1, "short"),
        answer(2, "Short"),  # case matters: labels are exact
        answer(3, ["short"]),
        answer(4, None),
        answer(5, "<script>alert(1)</script>"),
        answer(6, "cap", worker=""),
    ]
    with caplog.at_level(logging.WARNING):
        votes = accept_votes(task(max_assignments=9), answers)

    assert [v.assignment_id for v in votes] == ["A1"]
    assert "W2" in caplog.text and "W5" in caplog.text and "no worker id" in caplog.text


def test_duplicate_assignments_count_once_and_votes_are_capped_at_max_assignments():
    answers = [answer(1, "short"), answer(1, "long"), answer(2, "cap"), answer(3, "long")]
    answers.append(answer(4, "long"))

    votes = accept_votes(task(max_assignments=3), answers)

    assert [(v.assignment_id, v.label) for v in votes] == [
        ("A1", "short"),
        ("A2", "cap"),
        ("A3", "long"),
    ]


# --- settings that choose and configure a workforce ---------------------------------------


def test_workforce_settings_are_read_typed_and_round_trip():
    env = {
        "DRESSVISION_WORKFORCE": "mturk",
        "DRESSVISION_MAX_ASSIGNMENTS": "5",
        "DRESSVISION_MTURK_PRODUCTION": "true",
        "DRESSVISION_MTURK_REWARD_USD": "0.12",
        "DRESSVISION_MTURK_BUDGET_USD": "250",
        "DRESSVISION_MTURK_NOTIFICATION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/answers",
        "DRESSVISION_SIMULATED_SEED": "7",
        "DRESSVISION_LOOP_HOLDOUT_FOLDS": "4",
        "DRESSVISION_REVIEW_DOUBT": "0.7",
    }
    settings = Settings.from_env(env)

    assert (settings.workforce, settings.max_assignments) == ("mturk", 5)
    assert settings.mturk_production is True
    assert settings.loop_holdout_folds == 4 and settings.review_doubt == 0.7
    assert (settings.mturk_reward_usd, settings.mturk_budget_usd) == (Decimal("0.12"), 250)
    assert Settings.from_env(settings.to_env()) == settings
    defaults = Settings.from_env({})
    assert (defaults.workforce, defaults.mturk_production) == ("internal", False)
    assert Settings.from_env(defaults.to_env()) == defaults


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DRESSVISION_WORKFORCE", "fiverr", "must be one of"),
        ("DRESSVISION_MTURK_PRODUCTION", "maybe", "true or false"),
        ("DRESSVISION_MTURK_REWARD_USD", "five cents", "an amount"),
        ("DRESSVISION_MAX_ASSIGNMENTS", "0", "at least 1"),
        ("DRESSVISION_REVIEW_DOUBT", "2", "between 0 \\(off\\) and 1"),
    ],
)
def test_bad_workforce_settings_are_refused_at_start_up(name, value, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({name: value})
