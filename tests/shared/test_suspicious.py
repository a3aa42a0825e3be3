"""Confident-learning ranking of suspicious labels, and its precision/recall helper."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from shared.suspicious import per_class_thresholds, precision_recall, rank_suspicious

# Rows: 2 is labelled 0 but the model is sure of 1; 5 is unsure between 0 and 1; 7 is labelled 2
# but the model leans to 0; 8 is unknown (-1) and must change nothing.
GIVEN = np.array([0, 0, 0, 1, 1, 1, 2, 2, -1])
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.70, 0.20, 0.10],
        [0.20, 0.75, 0.05],
        [0.10, 0.80, 0.10],
        [0.30, 0.60, 0.10],
        [0.45, 0.45, 0.10],
        [0.10, 0.10, 0.80],
        [0.65, 0.05, 0.30],
        [0.05, 0.05, 0.90],
    ]
)


def test_thresholds_are_the_mean_self_confidence_per_given_class():
    thresholds = per_class_thresholds(GIVEN, PROBS)
    # t0 = (0.9 + 0.7 + 0.2) / 3, t1 = (0.8 + 0.6 + 0.45) / 3, t2 = (0.8 + 0.3) / 2; row 8 ignored
    np.testing.assert_allclose(thresholds, [0.6, 1.85 / 3, 0.55])


def test_a_class_nobody_is_labelled_with_is_never_suggested():
    given = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    assert per_class_thresholds(given, probs)[2] == np.inf
    assert rank_suspicious(given, probs) == []


def test_confidently_wrong_labels_are_flagged_surest_first():
    suspects = rank_suspicious(GIVEN, PROBS)
    assert [s.index for s in suspects] == [2, 7]
    first, second = suspects
    assert (first.given, first.suggested) == (0, 1)
    assert first.confidence == pytest.approx(0.75)
    assert first.margin == pytest.approx(0.55)
    assert (second.given, second.suggested) == (2, 0)
    assert second.margin == pytest.approx(0.35) and second.margin < first.margin


def test_uncertain_and_unknown_labels_are_not_flagged():
    flagged = {s.index for s in rank_suspicious(GIVEN, PROBS)}
    assert 5 not in flagged  # 0.45 reaches neither t0 = 0.6 nor t1 = 0.617
    assert 4 not in flagged  # its given class is likely, if under its threshold
    assert 8 not in flagged  # unknown label
    # Changing the unknown row's probabilities changes nothing (not in any threshold either).
    other = PROBS.copy()
    other[8] = [0.98, 0.01, 0.01]
    assert rank_suspicious(GIVEN, other) == rank_suspicious(GIVEN, PROBS)


def test_the_given_class_wins_when_it_is_the_most_likely_confident_class():
    # t0 = 0.5, t1 = 0.4. Row 0 passes both thresholds, 0 more likely: kept (confident joint).
    # Row 2 is labelled 1 but only class 0 passes: flagged.
    given = np.array([0, 0, 1, 1])
    probs = np.array([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1], [0.6, 0.3, 0.1], [0.4, 0.5, 0.1]])
    suspects = rank_suspicious(given, probs)
    assert [(s.index, s.suggested) for s in suspects] == [(2, 0)]


def test_ids_are_carried_and_limit_keeps_the_top():
    ids = [f"img-{i}" for i in range(len(GIVEN))]
    suspects = rank_suspicious(GIVEN, PROBS, ids=ids, limit=1)
    assert len(suspects) == 1 and suspects[0].item_id == "img-2"
    assert rank_suspicious(GIVEN, PROBS)[0].item_id is None


def simulate_noisy_labels(seed, *, n=2000, k=5, flip_rate=0.1):
    """True labels, 10% flipped to another class, and the probabilities of a decent model
    (about 95% accurate) that saw the true classes, noisily."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    flipped = rng.random(n) < flip_rate
    given = np.where(flipped, (truth + rng.integers(1, k, n)) % k, truth)
    logits = 3.0 * np.eye(k)[truth] + rng.normal(0.0, 1.0, (n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return truth, given, probs, np.flatnonzero(flipped)


def test_finds_injected_flips_well_above_chance():
    truth, given, probs, flipped = simulate_noisy_labels(seed=0)
    suspects = rank_suspicious(given, probs)
    precision, recall = precision_recall([s.index for s in suspects], flipped)
    top = suspects[: len(flipped) // 2]
    top_precision = np.mean([s.index in set(flipped) for s in top])
    print(
        f"\n{len(flipped)} flips of {len(given)}: flagged {len(suspects)}, precision "
        f"{precision:.3f}, recall {recall:.3f} (chance 0.10); top half {top_precision:.3f}"
    )
    assert precision > 0.8 and recall > 0.6
    assert top_precision >= precision  # the ranking puts the surest first
    right = [s.suggested == truth[s.index] for s in suspects if s.index in set(flipped)]
    assert np.mean(right) > 0.9  # and suggests the true class


def test_thresholds_match_a_hand_computation_on_the_simulation():
    _, given, probs, _ = simulate_noisy_labels(seed=1, n=300)
    given[::7] = -1
    expected = []
    for j in range(probs.shape[1]):
        mine = [probs[i, j] for i in range(len(given)) if given[i] == j]
        expected.append(sum(mine) / len(mine))
    np.testing.assert_allclose(per_class_thresholds(given, probs), expected)


@pytest.mark.parametrize(
    ("flagged", "flipped"),
    [([1, 2, 3], [2, 3, 4, 5]), ([], [1]), ([1], []), ([0, 9], [0, 9]), ([7], [8])],
)
def test_precision_recall_matches_scikit_learn(flagged, flipped):
    universe = 10
    y_true = np.isin(np.arange(universe), flipped)
    y_pred = np.isin(np.arange(universe), flagged)
    expected = (
        precision_score(y_true, y_pred, zero_division=0),
        recall_score(y_true, y_pred, zero_division=0),
    )
    assert precision_recall(flagged, flipped) == pytest.approx(expected)


def test_precision_recall_accepts_ids_and_ignores_repeats():
    assert precision_recall(["a", "a", "b"], ["a", "c"]) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("given", "probs", "kwargs", "message"),
    [
        (GIVEN[:3], PROBS, {}, r"given must be \(N,\)"),
        (GIVEN, PROBS[:, :1], {}, "K >= 2"),
        (GIVEN, PROBS * 3, {}, "softmax"),
        (GIVEN, np.log(PROBS), {}, "softmax"),
        (GIVEN, PROBS * 0.5, {}, "sum to 1"),
        (GIVEN.astype(float), PROBS, {}, "integer"),
        (np.where(GIVEN == 2, 3, GIVEN), PROBS, {}, "-1 for unknown"),
        (GIVEN, PROBS, {"ids": ["a"]}, "ids must have one entry"),
        (GIVEN, PROBS, {"limit": -1}, "limit"),
    ],
)
def test_rejects_bad_input(given, probs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank_suspicious(given, probs, **kwargs)


def test_the_flagged_set_is_cleanlabs_confident_learning_filter():
    """cleanlab (dev dependency) as the oracle: the same flagged set as
    `find_label_issues(filter_by="confident_learning")` on the same probabilities, with no
    difference to explain (our thresholds and confident-joint rule are cleanlab's)."""
    from cleanlab.filter import find_label_issues

    for seed in range(4):
        _, given, probs, _ = simulate_noisy_labels(seed, n=600, k=4 + seed)
        ours = {s.index for s in rank_suspicious(given, probs)}
        oracle = set(
            np.flatnonzero(find_label_issues(given, probs, filter_by="confident_learning"))
        )
        assert ours == oracle and ours


def test_the_predicted_neq_given_flagged_set_is_cleanlabs_too():
    """The review's filter on training dynamics: the labels the model's argmax disagrees with,
    `find_label_issues(filter_by="predicted_neq_given")` on the same probabilities, a superset
    of the confident-learning set (every confident-joint flag also loses the argmax)."""
    from cleanlab.filter import find_label_issues

    for seed in range(4):
        _, given, probs, _ = simulate_noisy_labels(seed, n=600, k=4 + seed)
        ours = {s.index for s in rank_suspicious(given, probs, flag_by="predicted_neq_given")}
        oracle = set(
            np.flatnonzero(find_label_issues(given, probs, filter_by="predicted_neq_given"))
        )
        assert ours == oracle and ours
        assert {s.index for s in rank_suspicious(given, probs)} <= ours


def test_predicted_neq_given_flags_the_argmax_disagreements_only():
    found = rank_suspicious(GIVEN, PROBS, flag_by="predicted_neq_given")
    # Row 5 (labelled 1) ties 0.45/0.45 between 0 and 1: the argmax takes the first class, as
    # cleanlab's does, so it is flagged; a confident-learning threshold would not flag it.
    assert {(s.index, s.suggested) for s in found} == {(2, 1), (5, 0), (7, 0)}
    assert 5 not in {s.index for s in rank_suspicious(GIVEN, PROBS)}
    with pytest.raises(ValueError, match="flag_by"):
        rank_suspicious(GIVEN, PROBS, flag_by="votes")


def test_the_likeliest_mistakes_come_first_by_self_confidence_over_the_threshold():
    suspects = rank_suspicious(GIVEN, PROBS)
    thresholds = per_class_thresholds(GIVEN, PROBS)
    for s in suspects:
        assert s.self_confidence == pytest.approx(PROBS[s.index, s.given])
        assert s.score == pytest.approx(PROBS[s.index, s.given] / thresholds[s.given])
    assert [s.score for s in suspects] == sorted(s.score for s in suspects)
    # Within one given class the order is cleanlab's rank by self-confidence.
    _, given, probs, _ = simulate_noisy_labels(seed=3)
    ranked = [s for s in rank_suspicious(given, probs) if s.given == 0]
    assert [s.self_confidence for s in ranked] == sorted(s.self_confidence for s in ranked)


def test_self_confidence_order_is_at_least_as_precise_at_the_top_as_the_margin_order():
    _, given, probs, flipped = simulate_noisy_labels(seed=1)
    k = len(flipped) // 2
    flips = set(flipped)
    by_score = [s.index in flips for s in rank_suspicious(given, probs, limit=k)]
    by_margin = [
        s.index in flips for s in rank_suspicious(given, probs, limit=k, order_by="margin")
    ]
    assert np.mean(by_score) >= np.mean(by_margin)


def test_rows_not_reviewable_count_in_thresholds_but_are_never_flagged():
    everything = rank_suspicious(GIVEN, PROBS)
    reviewable = np.ones(len(GIVEN), dtype=bool)
    reviewable[2] = False  # e.g. people confirmed it
    suspects = rank_suspicious(GIVEN, PROBS, reviewable=reviewable)
    assert [s.index for s in suspects] == [s.index for s in everything if s.index != 2]
    assert suspects[0].score == pytest.approx(everything[1].score)  # same thresholds


def test_thresholds_of_the_whole_distribution_rank_a_few_new_rows():
    thresholds = per_class_thresholds(GIVEN, PROBS)
    few = rank_suspicious(GIVEN[[2, 3]], PROBS[[2, 3]], thresholds=thresholds, ids=["a", "b"])
    assert [(s.item_id, s.suggested) for s in few] == [("a", 1)]
    with pytest.raises(ValueError, match="thresholds"):
        rank_suspicious(GIVEN, PROBS, thresholds=thresholds[:2])


def test_doubt_also_flags_a_likely_label_the_model_gives_far_less_than_its_class_usually_gets():
    neq = {s.index for s in rank_suspicious(GIVEN, PROBS, flag_by="predicted_neq_given")}
    assert neq == {2, 5, 7}  # 5: a tie, the argmax is class 0
    # Row 4: labelled 1 and 1 is its most likely class, but 0.60 < 0.99 x t1 = 0.61.
    doubted = rank_suspicious(GIVEN, PROBS, flag_by="predicted_neq_given", doubt=0.99)
    assert {s.index for s in doubted} == neq | {4}
    (row4,) = [s for s in doubted if s.index == 4]
    assert (row4.given, row4.suggested) == (1, 1)  # the model backs no other class
    assert row4.margin == 0 and row4.score == pytest.approx(0.6 / (1.85 / 3))
    # A lower share asks about fewer: none of the others is under 0.9 x its class's mean.
    lower = rank_suspicious(GIVEN, PROBS, flag_by="predicted_neq_given", doubt=0.9)
    assert {s.index for s in lower} == neq
    assert [s.score for s in doubted] == sorted(s.score for s in doubted)
    unknown_ok = rank_suspicious(GIVEN, PROBS, doubt=1.0)  # the unknown row is never flagged
    assert 8 not in {s.index for s in unknown_ok}
    with pytest.raises(ValueError, match="doubt"):
        rank_suspicious(GIVEN, PROBS, doubt=1.5)
