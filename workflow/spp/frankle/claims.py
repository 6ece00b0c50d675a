"""The five claims of Frankle et al. (2021), checked on a table of ``spp.frankle.runs.aggregate``.

Each claim gets a verdict per network, with the numbers it rests on. A difference counts only
when it exceeds the noise bar ``max(tolerance_pp, 2 x seed std)`` (the std pooled over the two
curves compared); "does not lower accuracy" holds when the error rises by less than that bar.

1. Every method at initialization beats random pruning at the highest sparsities.
2. Magnitude pruning after training beats every method at initialization.
3. Shuffling each layer's mask or reinitializing the kept weights does not lower accuracy for the
   methods at initialization.
4. Inverting the scores lowers accuracy for SNIP and SynFlow (GraSP's change is reported too).
5. Shuffling or reinitializing does lower accuracy for magnitude pruning after training.

"Highest sparsities": the ``highest`` largest sparsities of the table (default 2). Claims 2-5
average over every sparsity of the table, as the paper's curves are read as a whole.
"""

from __future__ import annotations

import math

import pandas as pd

from spp.frankle.runs import AT_INIT, METRIC

AFTER = "magnitude-after-training"
HOLDS, FAILS, NOT_MEASURED = "reproduced", "not reproduced", "not measured"
COLUMNS = ["network", "claim", "statement", "verdict", "evidence"]
STATEMENTS = {
    1: "every method at initialization beats random pruning at the highest sparsities",
    2: "magnitude pruning after training beats every method at initialization",
    3: "shuffling or reinitializing does not lower accuracy for the methods at initialization",
    4: "inverting the scores lowers accuracy for SNIP and SynFlow",
    5: "shuffling or reinitializing lowers accuracy for magnitude pruning after training",
}


def _bar(std_a: float, std_b: float, tolerance_pp: float) -> float:
    spread = [s for s in (std_a, std_b) if isinstance(s, float) and math.isfinite(s)]
    pooled = math.sqrt(sum(s * s for s in spread) / len(spread)) if spread else 0.0
    return max(tolerance_pp, 2 * pooled)


def _curve(g: pd.DataFrame, method: str, ablation: str = "none") -> pd.DataFrame:
    return g[(g.method == method) & (g.ablation == ablation)].set_index("sparsity").sort_index()


def _compare(a: pd.DataFrame, b: pd.DataFrame, metric: str, tolerance_pp: float,
             sparsities=None) -> dict | None:
    """mean over common sparsities of error(a) - error(b), and its noise bar."""
    common = a.index.intersection(b.index)
    if sparsities is not None:
        common = common.intersection(pd.Index(sparsities))
    if common.empty:
        return None
    diff = float((a.loc[common, f"{metric}_mean"] - b.loc[common, f"{metric}_mean"]).mean())
    std_a = float(a.loc[common, f"{metric}_std"].mean())
    std_b = float(b.loc[common, f"{metric}_std"].mean())
    return {"delta": diff, "bar": _bar(std_a, std_b, tolerance_pp), "n": len(common)}


def _pp(c: dict) -> str:
    return f"{c['delta']:+.2f} pp (bar {c['bar']:.2f})"


# What a comparison (error of a minus error of b) must show: lower by more than the bar, higher
# by more than the bar, or not higher than the bar; and the word said when it does not.
LOWER, HIGHER, NOT_HIGHER = "lower", "higher", "not higher"
_MISSED = {LOWER: "not better", HIGHER: "not worse", NOT_HIGHER: "worse"}


def _meets(c: dict, want: str) -> bool:
    if want == LOWER:
        return c["delta"] < -c["bar"]
    if want == HIGHER:
        return c["delta"] > c["bar"]
    return c["delta"] <= c["bar"]


def _tests(g: pd.DataFrame, top: list[float]) -> dict[int, tuple[str, list]]:
    """Per claim: the evidence's lead-in, and its comparisons (label, curve a, curve b,
    sparsities or None for all, what a - b must show, whether it decides the verdict)."""
    random, after = _curve(g, "random"), _curve(g, AFTER)
    top_txt = ", ".join(f"{100 * s:.1f}%" for s in top)
    mean = "mean over sparsities"
    return {
        1: (f"error minus random's, at {top_txt}",
            [(f"{m} at {100 * s:.1f}%", _curve(g, m), random, [s], LOWER, True)
             for m in AT_INIT for s in top]),
        2: (f"magnitude-after-training's error minus each method's, {mean}",
            [(f"vs {m}", after, _curve(g, m), None, LOWER, True) for m in AT_INIT]),
        3: (f"ablated minus unablated error, {mean}",
            [(f"{m}/{how}", _curve(g, m, how), _curve(g, m), None, NOT_HIGHER, True)
             for m in AT_INIT for how in ("shuffle", "reinit")]),
        4: (f"inverted minus unablated error, {mean}",
            [(m, _curve(g, m, "invert"), _curve(g, m), None, HIGHER, m != "grasp")
             for m in ("snip", "synflow", "grasp")]),
        5: (f"magnitude-after-training ablated minus unablated error, {mean}",
            [(how, _curve(g, AFTER, how), after, None, HIGHER, True)
             for how in ("shuffle", "reinit")]),
    }


def check(table: pd.DataFrame, metric: str = METRIC, tolerance_pp: float = 0.2,
          highest: int = 2) -> pd.DataFrame:
    """One row per network and claim: verdict and the numbers behind it."""
    rows = []
    for net, g in table[table.method != "dense"].groupby("network", sort=False):
        top = sorted(g.sparsity.unique())[-highest:]
        for claim, (lead, tests) in _tests(g, top).items():
            parts, ok, seen = [], True, False
            for label, a, b, sparsities, want, decides in tests:
                c = _compare(a, b, metric, tolerance_pp, sparsities)
                if c is None:
                    continue
                met = _meets(c, want)
                if decides:
                    seen, ok = True, ok and met
                    parts.append(f"{label}: {_pp(c)}" + ("" if met else f" ({_MISSED[want]})"))
                else:
                    word = "worse" if c["delta"] > c["bar"] else "not worse"
                    parts.append(f"{label}: {_pp(c)} ({word}, reported only)")
            rows.append({"network": net, "claim": claim, "statement": STATEMENTS[claim],
                         "verdict": (HOLDS if ok else FAILS) if seen else NOT_MEASURED,
                         "evidence": f"{lead}: " + "; ".join(parts)})
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_text(claims: pd.DataFrame) -> str:
    """One sentence per network and claim, for a caption."""
    return " ".join(f"{r.network}, claim {r.claim} ({r.statement}): {r.verdict}."
                    for r in claims.itertuples())
