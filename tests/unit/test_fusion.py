from __future__ import annotations

from math import sqrt

import pytest

from semantik.core.errors import InvalidInputError
from semantik.core.search.fusion import (
    DEFAULT_RRF_K,
    Contribution,
    Fused,
    Fusion,
    Ranked,
    dbsf,
    fuse,
    rrf,
)


def run(*hits: tuple[str, float]) -> list[Ranked]:
    return [Ranked(id=i, score=s) for i, s in hits]


def ranked_ids(*ids: str) -> list[Ranked]:
    """A run where only the order matters (RRF); scores fall by one per place."""
    return [Ranked(id=i, score=float(len(ids) - n)) for n, i in enumerate(ids)]


def ids(fused: list[Fused]) -> list[str]:
    return [f.id for f in fused]


def scores(fused: list[Fused]) -> dict[str, float]:
    return {f.id: f.score for f in fused}


# --- RRF -------------------------------------------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks_with_k_60() -> None:
    fused = rrf({"dense": ranked_ids("a", "b", "c"), "sparse": ranked_ids("b", "d")})
    assert DEFAULT_RRF_K == 60
    assert ids(fused) == ["b", "a", "d", "c"]
    assert scores(fused) == pytest.approx({"b": 1 / 62 + 1 / 61, "a": 1 / 61, "d": 1 / 62, "c": 1 / 63})


def test_rrf_k_sets_how_much_one_top_rank_outweighs_agreement_lower_down() -> None:
    runs = {"dense": ranked_ids("a", "d1", "d2", "y"), "sparse": ranked_ids("c", "d3", "d4", "y")}
    # y is 4th in both runs: with k = 1 a lone 1st place (1/2) beats it, with k = 60 the agreement wins.
    small_k = rrf(runs, k=1)
    assert scores(small_k)["a"] == pytest.approx(1 / 2)
    assert scores(small_k)["y"] == pytest.approx(1 / 5 + 1 / 5)
    assert ids(small_k)[:2] == ["a", "c"]
    usual_k = rrf(runs)
    assert scores(usual_k)["y"] == pytest.approx(1 / 64 + 1 / 64)
    assert scores(usual_k)["a"] == pytest.approx(1 / 61)
    assert ids(usual_k)[0] == "y"


def test_rrf_weights_flip_the_winner() -> None:
    runs = {"dense": ranked_ids("a", "b"), "sparse": ranked_ids("b", "a")}
    by_sparse = rrf(runs, weights={"sparse": 2.0})
    assert ids(by_sparse) == ["b", "a"]
    assert scores(by_sparse) == pytest.approx({"b": 1 / 62 + 2 / 61, "a": 1 / 61 + 2 / 62})
    by_dense = rrf(runs, weights={"dense": 2.0, "sparse": 1.0})
    assert ids(by_dense) == ["a", "b"]
    assert scores(by_dense) == pytest.approx({"a": 2 / 61 + 1 / 62, "b": 2 / 62 + 1 / 61})


def test_zero_weight_silences_a_retriever_but_keeps_its_hits_listed() -> None:
    fused = rrf({"dense": ranked_ids("a"), "sparse": ranked_ids("b", "a")}, weights={"sparse": 0.0})
    assert scores(fused) == pytest.approx({"a": 1 / 61, "b": 0.0})
    assert fused[1].contributions == (Contribution(retriever="sparse", rank=1, score=2.0),)


# --- DBSF ------------------------------------------------------------------------------------------------------


def test_dbsf_normalises_each_run_by_its_mean_and_sample_deviation() -> None:
    # dense [3, 2, 1]: mean = 2, sd = sqrt(((3-2)**2 + 0 + (1-2)**2) / (3 - 1)) = 1, range [2 - 3, 2 + 3] = [-1, 5].
    # sparse [10, 4]: mean = 7, sd = sqrt((3**2 + 3**2) / 1) = 3*sqrt(2), range [7 - 9*sqrt(2), 7 + 9*sqrt(2)].
    fused = dbsf({"dense": run(("a", 3.0), ("b", 2.0), ("c", 1.0)), "sparse": run(("c", 10.0), ("a", 4.0))})
    sparse_span = 18 * sqrt(2)
    assert scores(fused) == pytest.approx(
        {
            "a": (3 - -1) / 6 + (4 - (7 - 9 * sqrt(2))) / sparse_span,
            "b": (2 - -1) / 6,
            "c": (1 - -1) / 6 + (10 - (7 - 9 * sqrt(2))) / sparse_span,
        }
    )
    assert ids(fused) == ["a", "c", "b"]


def test_dbsf_single_run_of_three_gives_thirds() -> None:
    assert scores(dbsf({"dense": run(("a", 3.0), ("b", 2.0), ("c", 1.0))})) == pytest.approx(
        {"a": 2 / 3, "b": 1 / 2, "c": 1 / 3}
    )


def test_dbsf_is_blind_to_the_scale_of_a_run() -> None:
    small = dbsf({"dense": run(("a", 0.3), ("b", 0.2), ("c", 0.1))})
    large = dbsf({"dense": run(("a", 300.0), ("b", 200.0), ("c", 100.0))})
    assert scores(small) == pytest.approx(scores(large))


def test_dbsf_single_hit_and_equal_scores_normalise_to_one_half() -> None:
    fused = dbsf(
        {"dense": run(("a", 0.9)), "sparse": run(("b", 7.0), ("c", 7.0), ("d", 7.0))},
        weights={"dense": 2.0},
    )
    assert scores(fused) == pytest.approx({"a": 2 * 0.5, "b": 0.5, "c": 0.5, "d": 0.5})


def test_dbsf_does_not_clip_an_outlier_in_a_long_run_as_qdrant_does_not() -> None:
    # [1, 0 * 10]: mean = 1/11, var = ((10/11)**2 + 10*(1/11)**2) / 10 = 1/11; the outlier is 10/sqrt(11) ~ 3.015 sd up.
    fused = dbsf({"sparse": run(("outlier", 1.0), *((f"d{n:02}", 0.0) for n in range(10)))})
    sigma = sqrt(1 / 11)
    outlier = scores(fused)["outlier"]
    assert outlier == pytest.approx((1 - (1 / 11 - 3 * sigma)) / (6 * sigma))
    assert outlier > 1
    assert scores(fused)["d00"] == pytest.approx((0 - (1 / 11 - 3 * sigma)) / (6 * sigma))


def test_dbsf_weights_scale_each_runs_part() -> None:
    runs = {"dense": run(("a", 3.0), ("b", 2.0), ("c", 1.0)), "sparse": run(("c", 3.0), ("b", 2.0), ("a", 1.0))}
    assert scores(dbsf(runs, weights={"sparse": 3.0})) == pytest.approx(
        {"a": 2 / 3 + 3 * (1 / 3), "b": 1 / 2 + 3 * (1 / 2), "c": 1 / 3 + 3 * (2 / 3)}
    )
    assert ids(dbsf(runs, weights={"sparse": 3.0})) == ["c", "b", "a"]


def test_dbsf_rejects_non_finite_scores() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        dbsf({"dense": run(("a", float("nan")), ("b", 1.0))})


# --- the caution in shared/notes/search-and-stores.md ----------------------------------------------------------


def test_exact_identifier_loses_under_rrf_and_wins_under_dbsf() -> None:
    # Sparse puts the chunk holding the exact identifier far ahead; dense puts it 3rd, a hair behind two siblings,
    # above a tail of weaker hits.
    runs = {
        "sparse": run(("exact", 18.0), ("sibling", 6.0), ("other", 5.5), ("t1", 5.0), ("t2", 4.8)),
        "dense": run(("sibling", 0.83), ("other", 0.825), ("exact", 0.82), ("t1", 0.70), ("t2", 0.68)),
    }
    by_rank = rrf(runs)
    assert ids(by_rank)[0] == "sibling"
    assert scores(by_rank)["sibling"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores(by_rank)["exact"] == pytest.approx(1 / 61 + 1 / 63)

    by_distribution = fuse(Fusion.DBSF, runs)
    assert ids(by_distribution)[0] == "exact"
    assert scores(by_distribution)["exact"] > scores(by_distribution)["sibling"]


# --- contributions, order, ties ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", list(Fusion))
def test_contributions_carry_each_retrievers_rank_and_raw_score_in_run_order(fusion: Fusion) -> None:
    runs = {"dense": run(("a", 0.91), ("b", 0.85)), "sparse": run(("c", 12.5), ("a", 3.25))}
    by_id = {f.id: f for f in fuse(fusion, runs)}
    assert by_id["a"].contributions == (
        Contribution(retriever="dense", rank=1, score=0.91),
        Contribution(retriever="sparse", rank=2, score=3.25),
    )
    # Found by one retriever only: one contribution, the absent one is not listed.
    assert by_id["b"].contributions == (Contribution(retriever="dense", rank=2, score=0.85),)
    assert by_id["c"].contributions == (Contribution(retriever="sparse", rank=1, score=12.5),)


def test_contributions_follow_the_order_of_the_runs_mapping() -> None:
    fused = rrf({"sparse": ranked_ids("a"), "dense": ranked_ids("a")})
    assert [c.retriever for c in fused[0].contributions] == ["sparse", "dense"]


def test_equal_scores_put_the_best_single_rank_first() -> None:
    # q and p both normalise to 0.5; q was ranked 1st, p 2nd, so q leads although "p" < "q".
    assert ids(dbsf({"sparse": run(("q", 5.0), ("p", 5.0))})) == ["q", "p"]


def test_equal_scores_and_equal_best_rank_fall_back_to_id() -> None:
    assert ids(rrf({"dense": ranked_ids("zz"), "sparse": ranked_ids("aa")})) == ["aa", "zz"]


def test_permuted_ranks_tie_exactly_whatever_the_order_of_the_runs() -> None:
    runs = {"r1": ranked_ids("a", "b", "c"), "r2": ranked_ids("b", "c", "a"), "r3": ranked_ids("c", "a", "b")}
    fused = rrf(runs)
    assert ids(fused) == ["a", "b", "c"]
    assert fused[0].score == fused[1].score == fused[2].score
    assert ids(rrf(dict(reversed(runs.items())))) == ["a", "b", "c"]


def test_empty_runs_are_allowed() -> None:
    assert rrf({}) == []
    assert dbsf({"dense": [], "sparse": []}) == []
    with_empty = rrf({"dense": ranked_ids("a", "b"), "sparse": []}, weights={"sparse": 2.0})
    assert scores(with_empty) == pytest.approx({"a": 1 / 61, "b": 1 / 62})


def test_a_repeated_id_in_one_run_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="more than once"):
        rrf({"dense": ranked_ids("a", "a")})


def test_fusion_names_are_the_api_values() -> None:
    assert Fusion("rrf") is Fusion.RRF
    assert Fusion("dbsf") is Fusion.DBSF
    runs = {"dense": run(("a", 3.0), ("b", 1.0)), "sparse": run(("b", 9.0), ("a", 8.0))}
    assert fuse(Fusion.RRF, runs, k=5) == rrf(runs, k=5)
    assert fuse(Fusion.DBSF, runs, weights={"dense": 0.5}) == dbsf(runs, weights={"dense": 0.5})


# --- validation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", list(Fusion))
@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"keyword": 1.0}, "keyword"),
        ({"dense": -0.5}, "dense"),
        ({"dense": float("nan")}, "dense"),
        ({"sparse": float("inf")}, "sparse"),
    ],
)
def test_bad_weights_name_the_weights_field(fusion: Fusion, weights: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        fuse(fusion, {"dense": ranked_ids("a"), "sparse": ranked_ids("a")}, weights=weights)
    assert caught.value.field == "weights"


@pytest.mark.parametrize("k", [0, -1])
def test_rrf_k_below_one_names_the_rrf_k_field(k: int) -> None:
    with pytest.raises(InvalidInputError) as caught:
        fuse(Fusion.RRF, {"dense": ranked_ids("a")}, k=k)
    assert caught.value.field == "rrf_k"
