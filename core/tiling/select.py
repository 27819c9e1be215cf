"""Patch selection: a safe ``keep`` expression evaluator and the ordered rejection rules.

The rules run in a fixed order and every rejected patch records the *first* rule it failed:

1. ``foreground < min_foreground``                        -> ``"foreground"``
2. the plugins' own rules (``gigapatch_reject_patches``),
   in the order they arrive                               -> the plugin's reason
3. ``sharpness < score.min_sharpness``                    -> ``"sharpness"``
4. ``score.keep`` expression is false                     -> ``"keep"``
5. not among the ``score.top_n`` best by ``score.rank_by`` -> ``"top_n"``
6. not among the best ``score.top_percent`` % (of the
   patches that passed rules 1-4, rounded up)             -> ``"top_percent"``
"""

from __future__ import annotations

import ast
import math
import operator
from typing import TYPE_CHECKING, Any

import numpy as np

from gigapatch.errors import ConfigError

if TYPE_CHECKING:
    from gigapatch.config import ScoreConfig

_BINOPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CMPOPS: dict[type, Any] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}

#: the core's reasons, in the order the rules are applied (plugins' reasons come after the first)
REASONS = ("foreground", "sharpness", "keep", "top_n", "top_percent")


#: a keep expression longer than this is refused before it is parsed
MAX_KEEP_CHARS = 2_000


def _fail(expr: str, problem: str, names: list[str]) -> ConfigError:
    known = ", ".join(sorted(names)) or "none"
    shown = expr if len(expr) <= 120 else f"{expr[:100]}...({len(expr):,} characters)"
    return ConfigError(f"score.keep expression {shown!r}: {problem} (known columns: {known})")


def _check_expression(expr: str, names: list[str]) -> ast.Expression:
    """Parse ``expr`` and verify that it uses only the allowed node types and known names
    (no calls, attributes, subscripts, lambdas, comprehensions or powers), at most
    :data:`MAX_KEEP_CHARS` long (parse time and memory bounded)."""
    if len(expr) > MAX_KEEP_CHARS:
        raise _fail(expr, f"longer than {MAX_KEEP_CHARS:,} characters", names)
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise _fail(expr, f"not a valid expression ({e.msg})", names) from None
    except (RecursionError, MemoryError, ValueError) as e:  # nesting, huge literals
        raise _fail(expr, f"not a valid expression ({type(e).__name__.lower()}: "
                    f"{str(e)[:80]})", names) from None
    allowed = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
        ast.BinOp, ast.Compare, ast.Name, ast.Load, ast.Constant, *_BINOPS, *_CMPOPS,
    )
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise _fail(expr, f"{type(node).__name__} is not allowed", names)
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, (int, float))
        ):
            raise _fail(expr, f"only numbers are allowed as constants, not {node.value!r}", names)
        if isinstance(node, ast.Name) and node.id not in names:
            raise _fail(expr, f"unknown column {node.id!r}", names)
    return tree


def _eval(node: ast.AST, cols: dict[str, np.ndarray], n: int) -> np.ndarray:
    if isinstance(node, ast.Expression):
        return _eval(node.body, cols, n)
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, (int, float))  # checked by _check_expression
        return np.full(n, float(node.value))
    if isinstance(node, ast.Name):
        return np.asarray(cols[node.id], dtype=np.float64)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, cols, n)
        if isinstance(node.op, ast.Not):
            return ~v.astype(bool)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, cols, n), _eval(node.right, cols, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _BINOPS[type(node.op)](a.astype(np.float64), b.astype(np.float64))
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, cols, n).astype(bool) for v in node.values]
        out = vals[0]
        for v in vals[1:]:
            out = (out & v) if isinstance(node.op, ast.And) else (out | v)
        return out
    if isinstance(node, ast.Compare):  # chained: a < b < c == (a < b) and (b < c)
        out = np.ones(n, bool)
        left = _eval(node.left, cols, n)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, cols, n)
            out &= _CMPOPS[type(op)](left, right)
            left = right
        return out
    raise TypeError(f"unexpected node {type(node).__name__}")  # pragma: no cover - checked


def evaluate_keep(expr: str, scores: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a ``keep`` expression over score columns, safely (no ``eval``).

    Parameters
    ----------
    expr : e.g. ``"foreground > 0.8 and (pen < 0.05 or not sharpness < 20)"``. Allowed: column
        names, numbers, comparisons (chained too), ``and``/``or``/``not``, ``+ - * /``, unary minus
        and parentheses. Comparisons with NaN are false.
    scores : column name -> (N,) array.

    Returns
    -------
    (N,) bool array.

    Raises
    ------
    ConfigError
        naming the expression and the problem (syntax, a forbidden construct such as a call or an
        attribute, or an unknown column) and listing the known columns.
    """
    names = list(scores)
    tree = _check_expression(expr, names)
    n = len(next(iter(scores.values()))) if scores else 0
    out = _eval(tree, {k: np.asarray(v) for k, v in scores.items()}, n)
    out = np.asarray(out)
    if out.dtype != bool:  # a bare arithmetic expression: nonzero (and not NaN) is true
        out = np.nan_to_num(out, nan=0.0) != 0
    return np.broadcast_to(out, (n,)).copy()


def rank_order(values: np.ndarray, coords: np.ndarray | None = None) -> np.ndarray:
    """Indices sorting ``values`` (N,) descending, ties by y then x (or by index), NaN last."""
    v = np.asarray(values, dtype=np.float64)
    key = np.where(np.isnan(v), np.inf, -v)
    if coords is None or len(coords) == 0:
        return np.lexsort((np.arange(len(v)), key))
    c = np.asarray(coords)
    return np.lexsort((c[:, 0], c[:, 1], key))


def select_patches(
    scores: dict[str, np.ndarray],
    score_cfg: ScoreConfig,
    min_foreground: float | np.ndarray,
    coords: np.ndarray | None = None,
    rules: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the selection rules (see module docstring) to N scored candidates.

    Parameters
    ----------
    scores : column name -> (N,) array; ``foreground`` is required, ``sharpness`` is used by
        ``score.min_sharpness``.
    score_cfg : the run's :class:`~gigapatch.config.ScoreConfig`.
    min_foreground : ``patch.min_foreground``, or an (N,) array of per-patch bars (e.g. lower by
        ``score.foreground_tolerance`` where the foreground was measured on the pixels).
    coords : (N, 2) level-0 x, y, used to break ``top_n`` ties by y then x (else by index).
    rules : reason -> (N,) bool, True where a patch goes for that reason (the plugins' rules,
        applied in this order after the foreground rule).

    Returns
    -------
    keep : (N,) bool.
    reason : (N,) ``<U32`` array, ``""`` for kept patches, else the first rule failed.

    Raises
    ------
    ConfigError
        for a bad ``keep`` expression, an unknown ``rank_by`` column, or ``min_sharpness`` set
        while no ``sharpness`` column was computed.
    """
    if "foreground" not in scores:
        raise ConfigError("patch selection needs a 'foreground' score column")
    n = len(scores["foreground"])
    reason = np.full(n, "", dtype="U32")

    def reject(bad: np.ndarray, why: str) -> None:
        reason[(reason == "") & np.asarray(bad, bool)] = why

    fg = np.asarray(scores["foreground"], np.float64)
    reject(~(fg >= min_foreground), "foreground")
    for why, bad in (rules or {}).items():
        if np.shape(bad) != (n,):
            raise ValueError(f"rejection rule {why!r} has shape {np.shape(bad)} for {n} patches")
        reject(bad, why)
    if score_cfg.min_sharpness is not None:
        if "sharpness" not in scores:
            raise ConfigError(
                "score.min_sharpness is set but no 'sharpness' column was computed "
                "(set score.sharpness: true)"
            )
        reject(~(np.asarray(scores["sharpness"], np.float64) >= score_cfg.min_sharpness),
               "sharpness")
    if score_cfg.keep:
        reject(~evaluate_keep(score_cfg.keep, scores), "keep")
    if score_cfg.top_n is not None or score_cfg.top_percent is not None:
        if score_cfg.rank_by not in scores:
            known = ", ".join(sorted(scores))
            raise ConfigError(
                f"score.rank_by {score_cfg.rank_by!r} is not a score column (known columns: {known})"
            )
        alive = np.flatnonzero(reason == "")
        top_n = len(alive) if score_cfg.top_n is None else score_cfg.top_n
        budget = percent_budget(len(alive), score_cfg.top_percent)
        if len(alive) > min(top_n, budget):
            sub = None if coords is None else np.asarray(coords)[alive]
            order = rank_order(np.asarray(scores[score_cfg.rank_by])[alive], sub)
            reason[alive[order[top_n:]]] = "top_n"
            if budget < top_n:
                reason[alive[order[budget:top_n]]] = "top_percent"
    return reason == "", reason


def percent_budget(n: int, percent: float | None) -> int:
    """How many of ``n`` patches the best ``percent`` % is: ``ceil(n * percent / 100)`` (all
    when ``percent`` is None)."""
    if percent is None:
        return n
    return min(n, math.ceil(n * percent / 100.0 - 1e-9))


__all__ = ["REASONS", "evaluate_keep", "percent_budget", "rank_order", "select_patches"]
