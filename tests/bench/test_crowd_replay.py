"""bench/crowd_replay.py: each decision policy summed over the crowd seeds (mean and range), so
that a policy is judged by its spread, not by one crowd. Hand-made replays; nothing is run."""

from __future__ import annotations

from bench.crowd_replay import policies


def replay(answers: int, step: int, witness: bool, seed: int, bought: int, fixed: int) -> dict:
    return {
        "answers_per_task_at_first": answers,
        "ask_step": step,
        "model_witness": witness,
        "posterior_threshold": 0.9,
        "review_doubt": 0.85,
        "crowd_seed": seed,
        "answers": bought,
        "fixed": fixed,
        "changed_to_a_wrong_label": seed,
        "answers_per_label_fixed": round(bought / fixed, 2) if fixed else None,
    }


def test_a_policy_is_reported_over_its_crowd_seeds():
    rows = policies(
        [
            replay(3, 2, False, 0, 2700, 360),
            replay(2, 1, True, 0, 2200, 360),
            replay(3, 2, False, 1, 3000, 300),
            replay(2, 1, True, 1, 2400, 0),  # no fix: no answers per fix, not a zero
        ]
    )
    assert [(r["answers_per_task_at_first"], r["ask_step"], r["model_witness"]) for r in rows] == [
        (3, 2, False),
        (2, 1, True),
    ]
    old, new = rows
    assert old["crowd_seeds"] == [0, 1]
    assert (old["posterior_threshold"], old["review_doubt"]) == (0.9, 0.85)
    assert old["answers"] == {"mean": 2850, "min": 2700, "max": 3000}
    assert old["answers_per_label_fixed"] == {"mean": 8.75, "min": 7.5, "max": 10.0}
    assert new["answers_per_label_fixed"] == {"mean": 6.11, "min": 6.11, "max": 6.11}
    assert new["changed_to_a_wrong_label"] == {"mean": 0.5, "min": 0, "max": 1}
