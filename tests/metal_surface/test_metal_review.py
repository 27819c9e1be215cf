"""The review order as greedy weighted maximum coverage (issue #16, budgeted recall).

Hand-built coverage matrices with known greedy answers, the sparse incremental greedy against a
plain recompute-everything greedy and against brute force (the (1 - 1/e) bound), the sparse
coverage matrix against the dense one, and a composite strip with known boxes: the review order
shows more distinct defects at a budget than the patches' own score order.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gigapatch_metal_surface import metrics as M
from gigapatch_metal_surface.candidates import (
    coverage,
    coverage_matrix,
    greedy_cover,
    hold_chance,
    review_order,
)

HAND = np.array([[1, 1, 1, 0, 0, 0],  # row 0 holds defects 0-2
                 [0, 0, 0, 1, 1, 0],  # row 1: 3, 4
                 [1, 1, 0, 0, 0, 0],  # row 2: 0, 1
                 [0, 0, 1, 1, 1, 1]], float)  # row 3: 2-5 (the most at first)


def test_greedy_cover_hand_built() -> None:
    ones = np.ones(6)
    # row 3 first (4 defects); then rows 0 and 2 both add {0, 1}: the lower row, or the tie
    assert greedy_cover(sp.csr_matrix(HAND), ones).tolist() == [3, 0]
    assert greedy_cover(HAND, ones, tie=np.array([0, 0, 1, 0])).tolist() == [3, 2]
    # a heavy defect 0 puts row 0 first; row 3 then adds 3, 4, 5 and row 2 nothing
    heavy = np.array([10.0, 1, 1, 1, 1, 1])
    assert greedy_cover(HAND, heavy).tolist() == [0, 3]
    # chances: two half-chances at one defect are both worth a look (0.5, then 0.25)
    assert greedy_cover(np.array([[0.5], [0.5], [0.0]]), np.ones(1)).tolist() == [0, 1]
    # nothing to hold: no picks
    assert greedy_cover(np.zeros((3, 2)), np.ones(2)).tolist() == []


def _expected(p: np.ndarray, w: np.ndarray, picks: list[int]) -> list[float]:
    """Weight expected to be held after each pick."""
    miss, out = w.astype(float).copy(), []
    for i in picks:
        miss *= 1 - p[i]
        out.append(float(w.sum() - miss.sum()))
    return out


def _plain_greedy(p: np.ndarray, w: np.ndarray) -> list[int]:
    miss, taken, picks = w.astype(float).copy(), np.zeros(len(p), bool), []
    while True:
        gain = np.where(taken, -np.inf, p @ miss)
        best = int(np.argmax(gain))
        if gain[best] <= 1e-9:
            return picks
        picks.append(best)
        taken[best] = True
        miss *= 1 - p[best]


def test_sparse_greedy_is_the_plain_greedy_and_within_its_bound() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, k = int(rng.integers(3, 9)), int(rng.integers(2, 12))
        held = (rng.random((n, k)) < 0.3).astype(float)
        chance = held * rng.choice([0.4, 1.0], size=held.shape)
        w = rng.random(k) + 0.1
        got, plain = greedy_cover(sp.csr_matrix(chance), w).tolist(), _plain_greedy(chance, w)
        # the same gains pick by pick (rows with equal gains may swap: float ties)
        np.testing.assert_allclose(_expected(chance, w, got), _expected(chance, w, plain),
                                   atol=1e-9)
        picks = greedy_cover(sp.csr_matrix(held), w)
        for budget in range(1, n + 1):  # 0/1 chances: at least (1 - 1/e) of the best
            best = max(w[held[list(c)].any(axis=0)].sum()
                       for c in itertools.combinations(range(n), budget))
            got = w[held[picks[:budget]].any(axis=0)].sum() if len(picks) else 0.0
            assert got >= (1 - 1 / np.e) * best - 1e-9


def test_coverage_matrix_is_the_dense_coverage() -> None:
    rng = np.random.default_rng(1)
    coords = rng.integers(0, 2000, (300, 2))
    x0y0 = rng.uniform(0, 2000, (40, 2))
    boxes = np.concatenate([x0y0, x0y0 + rng.uniform(5, 300, (40, 2))], axis=1)
    dense = coverage(coords, 256, boxes)
    got = coverage_matrix(coords, 256, boxes)
    assert sp.issparse(got) and got.nnz == np.count_nonzero(dense)
    np.testing.assert_allclose(got.toarray(), dense, atol=1e-12)
    assert coverage_matrix(coords[:0], 256, boxes).shape == (0, 40)


def test_review_order_puts_greedy_picks_first_then_the_score() -> None:
    coords = np.array([[x, 0] for x in range(0, 1024, 128)])  # side 256, stride 128
    boxes = np.array([[300, 40, 380, 120], [700, 40, 780, 120]], float)
    own = np.linspace(1.0, 0.0, len(coords))  # the patches' own score favours the left
    r = review_order(coords, 256, boxes, np.ones(2), own)
    chance = hold_chance(coverage(coords, 256, boxes))
    first = np.argsort(-r)[:2]
    assert (chance[first].max(axis=0) == 1.0).all()  # one patch wholly on each defect
    rest = np.setdiff1d(np.arange(len(coords)), first)
    assert (np.diff(r[rest]) <= 0).all() and r[rest].max() < 1.0  # then by their own score


def test_greedy_order_shows_more_defects_than_the_score_order(metal_surface_dir: Path,
                                                             tmp_path: Path) -> None:
    """A dense composite strip with known boxes (only the metric sees them): at 10 % and 20 %
    of the patches the review order holds more distinct defects than the patches' own
    distance-from-normal score, and at least 0.85 of the best any selection could do."""
    from gigapatch import PatchSet, load_config, open_image, tile_image
    from gigapatch_metal_surface.composite import composite_strip, write_strip

    strip = composite_strip(metal_surface_dir, 3, (6000, 1000), 20)
    path, _ = write_strip(strip, tmp_path / "dense.tif", "uint8", "striped",
                          pixel_size_mm=(0.1, 0.1))
    cfg = load_config("metal_surface", overrides={"plugin.metal_surface.scorers": ["normal"]})
    with open_image(path, domain="metal_surface") as img:
        tile_image(img, cfg, out_dir=tmp_path / "out")
    ps = PatchSet.read(tmp_path / "out" / "dense.h5")
    coords = np.concatenate([ps.coords, ps.rejected_coords])
    review = np.concatenate([ps.scores["review"], ps.rejected_scores["review"]])
    normal = np.concatenate([ps.scores["normal"], ps.rejected_scores["normal"]])
    held = M.holds(coords, ps.patch_size_level0, M.rects(strip.boxes()))
    for pct in (10, 20):
        k = M.budget(len(coords), pct)
        got = M.recall_at(held, M.top_k(review, k))
        assert got > M.recall_at(held, M.top_k(normal, k))
        assert got >= 0.85 * M.oracle_recall(held, k)[0]


@pytest.mark.parametrize("weight", [np.ones(2), np.array([1.0, 5.0])])
def test_review_order_without_candidates_is_the_score(weight: np.ndarray) -> None:
    coords = np.array([[0, 0], [256, 0], [512, 0]])
    own = np.array([0.2, 0.9, 0.5])
    r = review_order(coords, 256, np.zeros((0, 4)), weight[:0], own)
    assert np.argsort(-r).tolist() == [1, 2, 0] and r.max() < 1.0
    far = np.array([[5000, 5000, 5100, 5100], [9000, 0, 9100, 80]], float)  # no patch on them
    assert np.argsort(-review_order(coords, 256, far, weight, own)).tolist() == [1, 2, 0]
