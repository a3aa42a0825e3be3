"""What Dawid-Skene learned about workers: spammer score, per-worker summary, the verdicts."""

from __future__ import annotations

import numpy as np

from shared.aggregation import dawid_skene, spammer_score, summarize_workers

K = 5


def crowd_votes(seed: int = 0, tasks: int = 60) -> list[tuple]:
    """Three careful workers (90%), one who answers at random, one who always says 0, and a
    newcomer with 3 answers (all right)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, size=tasks)
    votes = []
    for t, true in enumerate(truth):
        for w in ("good1", "good2", "good3"):
            right = rng.random() < 0.9
            votes.append((t, w, int(true) if right else int((true + rng.integers(1, K)) % K)))
        votes.append((t, "random", int(rng.integers(0, K))))
        votes.append((t, "constant", 0))
        if t < 3:
            votes.append((t, "newcomer", int(true)))
    return votes


def test_spammer_score_separates_answers_that_ignore_the_truth():
    assert spammer_score(np.eye(K)) == 1.0
    assert spammer_score(np.full((K, K), 1 / K)) == 0.0
    always_zero = np.zeros((K, K))
    always_zero[:, 0] = 1.0
    assert spammer_score(always_zero) == 0.0
    swapped = np.eye(K)[[1, 0, 2, 3, 4]]  # consistently confuses two labels: not a spammer
    assert spammer_score(swapped) == 1.0


def test_summaries_flag_the_spammers_and_judge_nobody_on_a_few_answers():
    summaries = summarize_workers([dawid_skene(crowd_votes(), K)])
    for good in ("good1", "good2", "good3"):
        assert not summaries[good].likely_spammer
        assert summaries[good].accuracy > 0.6  # smoothing pulls 0.9 down on 60 answers
        assert not summaries[good].below(0.5)
    assert summaries["random"].likely_spammer and summaries["constant"].likely_spammer
    assert summaries["random"].below(0.5) and summaries["constant"].below(0.5)
    newcomer = summaries["newcomer"]
    assert newcomer.answers == 3 and newcomer.spammer_score is None
    assert not newcomer.likely_spammer and not newcomer.below(0.99)


def test_summaries_weight_facets_by_answers():
    first = dawid_skene(crowd_votes(seed=1), K)
    second = dawid_skene(crowd_votes(seed=2, tasks=20), K)
    combined = summarize_workers([first, second])["good1"]
    a, b = first.workers["good1"], second.workers["good1"]
    assert combined.answers == a.num_votes + b.num_votes == 80
    expected = (a.accuracy * a.num_votes + b.accuracy * b.num_votes) / 80
    assert abs(combined.accuracy - expected) < 1e-12
