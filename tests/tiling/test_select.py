from __future__ import annotations

import numpy as np
import pytest

from gigapatch import ConfigError
from gigapatch.config import ScoreConfig
from gigapatch.tiling.select import evaluate_keep, rank_order, select_patches

COLS = {
    "foreground": np.array([0.9, 0.4, 1.0, 0.7, 0.95, 0.6]),
    "pen": np.array([0.0, 0.0, 0.2, 0.01, 0.0, 0.0]),
    "sharpness": np.array([50.0, 60.0, 70.0, 5.0, 80.0, 40.0]),
}


def test_keep_expression_basic_and_precedence():
    got = evaluate_keep("foreground > 0.65 and pen < 0.05", COLS)
    assert got.tolist() == [True, False, False, True, True, False]
    got = evaluate_keep("not (foreground > 0.65) or sharpness >= 80", COLS)
    assert got.tolist() == [False, True, False, False, True, True]
    # arithmetic, unary minus, chained comparison
    got = evaluate_keep("0.5 < foreground * 2 - pen * 10 <= 1.8", COLS)
    expected = (0.5 < COLS["foreground"] * 2 - COLS["pen"] * 10) & (
        COLS["foreground"] * 2 - COLS["pen"] * 10 <= 1.8
    )
    assert got.tolist() == expected.tolist()
    assert evaluate_keep("-sharpness < -60", COLS).tolist() == (COLS["sharpness"] > 60).tolist()
    assert evaluate_keep("sharpness / 10 == 5", COLS).tolist() == [True] + [False] * 5


def test_keep_expression_nan_is_false():
    cols = {"a": np.array([1.0, np.nan, 3.0])}
    assert evaluate_keep("a > 0", cols).tolist() == [True, False, True]
    assert evaluate_keep("a / 0 > 0", cols).tolist() == [True, False, True]  # inf > 0


@pytest.mark.parametrize(
    "expr, problem",
    [
        ("__import__('os').system('true')", "Call"),
        ("foreground.real > 0", "Attribute"),
        ("bogus > 0.5", "unknown column 'bogus'"),
        ("foreground > 'x'", "only numbers"),
        ("foreground > True", "only numbers"),
        ("foreground ** 2 > 0", "Pow"),
        ("foreground >", "not a valid expression"),
        ("[foreground][0] > 0", "is not allowed"),
        ("lambda: 1", "Lambda"),
        ("foreground if pen else 1", "IfExp"),
    ],
)
def test_keep_expression_rejects_unsafe(expr, problem):
    with pytest.raises(ConfigError) as e:
        evaluate_keep(expr, COLS)
    msg = str(e.value)
    assert problem in msg
    assert repr(expr) in msg  # names the expression
    assert "foreground, pen, sharpness" in msg  # lists the known columns
    assert "\n" not in msg


def pen_rule(cols, max_pen=0.05):
    """A plugin's rejection rule, as ``gigapatch_reject_patches`` returns it."""
    return {"pen": np.asarray(cols["pen"]) > max_pen}


def test_select_rules_in_order():
    cfg = ScoreConfig(min_sharpness=10, keep="sharpness > 45")
    keep, reason = select_patches(COLS, cfg, min_foreground=0.5, rules=pen_rule(COLS))
    # 1: fg 0.4 -> foreground; 2: pen 0.2 -> pen; 3: sharp 5 -> sharpness; 5: sharp 40 -> keep
    assert reason.tolist() == ["", "foreground", "pen", "sharpness", "", "keep"]
    assert keep.tolist() == [True, False, False, False, True, False]


def test_select_first_failure_wins():
    cols = {
        "foreground": np.array([0.1]),
        "pen": np.array([0.9]),
        "sharpness": np.array([0.0]),
    }
    cfg = ScoreConfig(min_sharpness=10, keep="pen < 0")
    assert select_patches(cols, cfg, 0.5, rules=pen_rule(cols))[1].tolist() == ["foreground"]
    assert select_patches(cols, cfg, 0.0, rules=pen_rule(cols))[1].tolist() == ["pen"]
    assert select_patches(cols, cfg, 0.0)[1].tolist() == ["sharpness"]


def test_plugin_rules_apply_in_their_order():
    cols = {**COLS, "blur": np.array([0, 0, 0, 0, 1, 0], float)}
    rules = {"blur": cols["blur"] >= 0.5, "pen": cols["pen"] > 0.05}
    keep, reason = select_patches(cols, ScoreConfig(), 0.5, rules=rules)
    assert reason.tolist() == ["", "foreground", "pen", "", "blur", ""]
    with pytest.raises(ValueError, match="rule 'bad'"):
        select_patches(cols, ScoreConfig(), 0.5, rules={"bad": np.ones(2, bool)})


def test_top_n_ties_by_y_then_x():
    n = 6
    cols = {"foreground": np.ones(n), "s": np.array([3.0, 5.0, 5.0, 1.0, 5.0, np.nan])}
    coords = np.array([[0, 0], [512, 256], [256, 256], [0, 256], [999, 0], [5, 5]])
    cfg = ScoreConfig(top_n=3, rank_by="s")
    keep, reason = select_patches(cols, cfg, 0.5, coords=coords)
    # the three 5.0 win; order among them: (999,0) first (y=0), then (256,256), (512,256)
    assert keep.tolist() == [False, True, True, False, True, False]
    assert set(reason[~keep]) == {"top_n"}
    assert rank_order(cols["s"], coords).tolist() == [4, 2, 1, 0, 3, 5]
    cfg2 = ScoreConfig(top_n=2, rank_by="s")
    keep2, _ = select_patches(cols, cfg2, 0.5, coords=coords)
    assert np.flatnonzero(keep2).tolist() == [2, 4]
    # without coords ties go by index; deterministic on repeat
    k3, _ = select_patches(cols, cfg2, 0.5)
    assert np.flatnonzero(k3).tolist() == [1, 2]


def test_top_n_only_counts_survivors():
    cols = {"foreground": np.array([0.1, 0.9, 0.8, 0.7])}
    keep, reason = select_patches(cols, ScoreConfig(top_n=2), 0.5)
    assert reason.tolist() == ["foreground", "", "", "top_n"]
    keep, reason = select_patches(cols, ScoreConfig(top_n=10), 0.5)
    assert keep.sum() == 3


def test_select_config_errors():
    with pytest.raises(ConfigError, match="rank_by 'nope'"):
        select_patches(COLS, ScoreConfig(top_n=1, rank_by="nope"), 0.5)
    cols = {"foreground": np.ones(2)}
    with pytest.raises(ConfigError, match="sharpness"):
        select_patches(cols, ScoreConfig(min_sharpness=3), 0.5)
    with pytest.raises(ConfigError, match="unknown column 'pen'"):
        select_patches(cols, ScoreConfig(keep="pen < 0.1"), 0.5)
    # ScoreConfig names no domain's artefact: a pathology setting there is an unknown key
    with pytest.raises(ValueError, match="max_pen"):
        ScoreConfig(max_pen=0.1)


def test_empty_input():
    cols = {"foreground": np.zeros(0)}
    keep, reason = select_patches(cols, ScoreConfig(keep="foreground > 1", top_n=3), 0.5)
    assert keep.shape == (0,) and reason.shape == (0,)
