"""Vote aggregation: Dawid-Skene against a plain loop version and against majority vote, and the
decision rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.aggregation import (
    AggregationConfig,
    Outcome,
    dawid_skene,
    decide,
    majority_vote,
    votes_by_task,
)

TINY_VOTES = [
    ("t1", "ann", 0),
    ("t1", "bob", 0),
    ("t1", "cat", 1),
    ("t2", "ann", 1),
    ("t2", "bob", 1),
    ("t2", "dan", 1),
    ("t3", "ann", 2),
    ("t3", "cat", 0),
    ("t3", "dan", 2),
    ("t4", "bob", 0),
    ("t4", "cat", 2),
    ("t5", "cat", 1),
    ("t5", "dan", 0),
    ("t5", "ann", 0),
]


def reference_dawid_skene(votes, k, smoothing, tol, max_iter):
    """Dawid & Skene (1979) written out with loops and dicts, the same smoothing and stopping."""
    tasks = list(dict.fromkeys(t for t, _, _ in votes))
    workers = list(dict.fromkeys(w for _, w, _ in votes))
    post = {}
    for t in tasks:
        mine = [label for task, _, label in votes if task == t]
        post[t] = [mine.count(j) / len(mine) for j in range(k)]
    for _ in range(max_iter):
        priors = [sum(post[t][j] for t in tasks) + smoothing for j in range(k)]
        priors = [p / sum(priors) for p in priors]
        confusion = {}
        for w in workers:
            rows = []
            for j in range(k):
                row = [smoothing] * k
                for task, worker, label in votes:
                    if worker == w:
                        row[label] += post[task][j]
                rows.append([c / sum(row) for c in row])
            confusion[w] = rows
        new = {}
        for t in tasks:
            logs = [math.log(priors[j]) for j in range(k)]
            for task, worker, label in votes:
                if task == t:
                    for j in range(k):
                        logs[j] += math.log(confusion[worker][j][label])
            top = max(logs)
            unnorm = [math.exp(x - top) for x in logs]
            new[t] = [u / sum(unnorm) for u in unnorm]
        change = max(abs(new[t][j] - post[t][j]) for t in tasks for j in range(k))
        post = new
        if change < tol:
            break
    return post, confusion, priors


def test_em_matches_a_plain_loop_implementation():
    config = AggregationConfig(smoothing=0.5, tol=1e-9, max_iter=50)
    result = dawid_skene(TINY_VOTES, 3, config=config)
    post, confusion, priors = reference_dawid_skene(TINY_VOTES, 3, 0.5, 1e-9, 50)

    assert list(result.tasks) == ["t1", "t2", "t3", "t4", "t5"]
    for task_id, task in result.tasks.items():
        np.testing.assert_allclose(task.posterior, post[task_id], atol=1e-9)
        assert task.label == int(np.argmax(post[task_id]))
        assert task.confidence == pytest.approx(max(post[task_id]))
    for worker_id, worker in result.workers.items():
        np.testing.assert_allclose(worker.confusion, confusion[worker_id], atol=1e-9)
        np.testing.assert_allclose(worker.confusion.sum(axis=1), 1.0)
    np.testing.assert_allclose(result.class_priors, priors, atol=1e-9)
    assert result.workers["ann"].num_votes == 4


def test_em_is_deterministic_and_converges():
    first = dawid_skene(TINY_VOTES, 3)
    second = dawid_skene(TINY_VOTES, 3)
    assert first.converged and first.iterations < AggregationConfig().max_iter
    for task_id in first.tasks:
        np.testing.assert_array_equal(
            first.tasks[task_id].posterior, second.tasks[task_id].posterior
        )


def test_a_worker_with_one_vote_is_not_perfect():
    result = dawid_skene([*TINY_VOTES, ("t1", "eve", 0)], 3)
    eve = result.workers["eve"]
    assert eve.num_votes == 1
    assert 0.2 < eve.accuracy < 0.8
    assert (eve.confusion > 0).all()


def simulate_crowd(seed, *, num_tasks=400, k=5, votes_per_task=5):
    """22 workers right 70% of the time (errors spread evenly), 4 who click at random and 4
    who always click the first option. Returns votes, the truth and each worker's kind."""
    rng = np.random.default_rng(seed)
    kinds = ["good"] * 22 + ["random"] * 4 + ["constant"] * 4
    truth = rng.integers(0, k, num_tasks)
    votes = []
    for t in range(num_tasks):
        for w in rng.choice(len(kinds), votes_per_task, replace=False):
            if kinds[w] == "good":
                right = rng.random() < 0.7
                label = truth[t] if right else (truth[t] + rng.integers(1, k)) % k
            elif kinds[w] == "random":
                label = rng.integers(0, k)
            else:
                label = 0
            votes.append((f"task-{t}", f"worker-{w}", int(label)))
    return votes, truth, kinds


def accuracy(tasks, truth):
    return float(np.mean([tasks[f"task-{t}"].label == truth[t] for t in range(len(truth))]))


def test_dawid_skene_beats_majority_vote_with_spammers():
    votes, truth, _ = simulate_crowd(seed=0)
    ds = dawid_skene(votes, 5)
    mv = majority_vote(votes, 5)
    ds_acc, mv_acc = accuracy(ds.tasks, truth), accuracy(mv, truth)
    print(f"\naccuracy on 400 tasks: Dawid-Skene {ds_acc:.3f}, majority vote {mv_acc:.3f}")
    assert ds.converged
    # Over 20 seeds the margin ranged 0.03-0.11 (mean 0.076); the ceiling with the true
    # confusion matrices is about 0.85 here.
    assert ds_acc >= mv_acc + 0.03


def test_estimated_accuracies_rank_spammers_below_good_workers():
    votes, _, kinds = simulate_crowd(seed=1)
    workers = dawid_skene(votes, 5).workers
    good = [workers[f"worker-{w}"].accuracy for w, kind in enumerate(kinds) if kind == "good"]
    spam = [workers[f"worker-{w}"].accuracy for w, kind in enumerate(kinds) if kind != "good"]
    assert max(spam) < min(good)
    assert max(spam) < 0.35 < 0.5 < float(np.mean(good))
    # The always-first-option clicker answers 0 whatever the truth: every row peaks at column 0
    # (below 1 only by the smoothing, about 13 votes per row here).
    constant = workers[f"worker-{kinds.index('constant')}"].confusion
    assert (constant.argmax(axis=1) == 0).all() and (constant[:, 0] > 0.6).all()


def test_majority_vote_breaks_ties_on_the_lowest_class_index():
    votes = [("a", "w1", 2), ("a", "w2", 1), ("b", "w1", 1), ("b", "w2", 1), ("b", "w3", 0)]
    result = majority_vote(votes, 3)
    assert result["a"].label == 1 and result["a"].confidence == 0.5
    assert result["b"].label == 1
    np.testing.assert_allclose(result["b"].posterior, [1 / 3, 2 / 3, 0])


def test_votes_by_task_groups_label_indices():
    assert votes_by_task(TINY_VOTES[:4]) == {"t1": [0, 0, 1], "t2": [1]}


# decide()
CONFIDENT = np.array([0.95, 0.03, 0.02])
UNSURE = np.array([0.6, 0.3, 0.1])


def test_decided_when_confident_and_two_agree():
    decision = decide(CONFIDENT, [0, 0, 1])
    assert decision.outcome == Outcome.DECIDED
    assert (decision.label, decision.agreeing, decision.ask) == (0, 2, 0)


def test_a_high_posterior_still_needs_two_agreeing_answers():
    decision = decide(CONFIDENT, [0, 1, 2])
    assert decision.outcome == Outcome.ASK_MORE
    assert decision.ask == 1  # one more answer at a time by default
    assert "agree" in decision.reason


def test_ask_more_when_unsure_capped_by_the_budget():
    two_at_a_time = AggregationConfig(ask_step=2, max_assignments=9)
    assert decide(UNSURE, [0, 0, 1], config=two_at_a_time).ask == 2
    capped = decide(UNSURE, [0, 0, 1, 0, 1, 2, 0, 1], config=two_at_a_time)
    assert capped.outcome == Outcome.ASK_MORE and capped.ask == 1


def test_escalate_when_the_cap_is_reached_undecided():
    decision = decide(UNSURE, [0, 0, 1, 0, 1, 2, 0, 1, 2])
    assert decision.outcome == Outcome.ESCALATE and decision.ask == 0


def test_wait_while_answers_are_outstanding():
    assert decide(UNSURE, [0, 1], assigned=3).outcome == Outcome.WAIT
    assert decide(UNSURE, [0, 1, 0, 1, 0, 1, 0, 1], assigned=9).outcome == Outcome.WAIT
    assert decide(CONFIDENT, [0, 0], assigned=3).outcome == Outcome.DECIDED


def test_a_witness_that_was_right_before_tips_a_split_its_way():
    """The model's suggestion as a pseudo-worker (shared.relabel.MODEL_WITNESS): where it agreed
    with the people on earlier tasks, it raises the posterior of its label on a split task."""
    history = [(f"t{i}", w, i % 3) for i in range(30) for w in ("a", "b", "model")]
    split = [("x", "a", 0), ("x", "c", 1)]
    without = dawid_skene(history + split, 3).tasks["x"].posterior
    witnessed = dawid_skene([*history, *split, ("x", "model", 0)], 3).tasks["x"].posterior
    assert witnessed[0] > 0.9 > without[0]
    # One person is never enough, however sure the posterior: `decide` counts the answers.
    assert decide(witnessed, [0, 1]).outcome == Outcome.ASK_MORE


def test_threshold_comes_from_the_config():
    assert decide(UNSURE, [0, 0], config=AggregationConfig(threshold=0.6)).outcome == "decided"


# validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_agreeing": 0}, "min_agreeing"),
        ({"ask_step": 0}, "ask_step"),
        ({"initial_assignments": 10}, "raise max_assignments"),
        ({"min_agreeing": 4, "initial_assignments": 3}, "initial_assignments"),
        ({"smoothing": 0.0}, "smoothing"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AggregationConfig(**kwargs)


@pytest.mark.parametrize(
    ("votes", "k", "message"),
    [
        ([], 3, "no votes"),
        ([("t", "w", 0)], 1, "at least 2"),
        ([("t", "w", 0)], 2.0, "must be an int"),
        ([("t", "w", 3)], 3, r"outside \[0, 3\)"),
        ([("t", "w", -1)], 3, "outside"),
        ([("t", "w", "a-line")], 3, "taxonomy's index"),
        ([("t", "w")], 3, "triple"),
        ([("t", "w", 0), ("t", "w", 1)], 3, "deduplicate"),
    ],
)
def test_aggregation_rejects_bad_votes(votes, k, message):
    with pytest.raises(ValueError, match=message):
        dawid_skene(votes, k)
    with pytest.raises(ValueError, match=message):
        majority_vote(votes, k)


@pytest.mark.parametrize(
    ("posterior", "votes", "assigned", "message"),
    [
        (np.array([1.0]), [0], None, "K >= 2"),
        (np.array([[0.5, 0.5]]), [0], None, "K >= 2"),
        (np.array([0.7, 0.7]), [0], None, "sum to 1"),
        (np.array([1.5, -0.5]), [0], None, "non-negative"),
        (np.array([0.5, 0.5]), [2], None, r"in \[0, 2\)"),
        (np.array([0.5, 0.5]), [0, 1], 1, "assigned"),
    ],
)
def test_decide_rejects_bad_input(posterior, votes, assigned, message):
    with pytest.raises(ValueError, match=message):
        decide(posterior, votes, assigned=assigned)
