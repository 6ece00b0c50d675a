"""The five claims of Frankle et al. (2021), checked on a table of ``spp.frankle.aggregate``.

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

from spp.frankle import AT_INIT, METRIC

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


def check(table: pd.DataFrame, metric: str = METRIC, tolerance_pp: float = 0.2,
          highest: int = 2) -> pd.DataFrame:
    """One row per network and claim: verdict and the numbers behind it."""
    rows = []
    for net, g in table[table.method != "dense"].groupby("network", sort=False):
        sparsities = sorted(g.sparsity.unique())
        top = sparsities[-highest:]
        top_txt = ", ".join(f"{100 * s:.1f}%" for s in top)

        def add(claim, verdict, evidence, net=net):
            rows.append({"network": net, "claim": claim, "statement": STATEMENTS[claim],
                         "verdict": verdict, "evidence": evidence})

        # 1. at-init methods vs random at the highest sparsities: lower error at each of them
        random = _curve(g, "random")
        parts, ok, seen = [], True, False
        for m in AT_INIT:
            cur = _curve(g, m)
            for s in top:
                c = _compare(cur, random, metric, tolerance_pp, [s])
                if c is None:
                    continue
                seen = True
                beats = c["delta"] < -c["bar"]
                ok &= beats
                parts.append(f"{m} at {100 * s:.1f}%: {_pp(c)}{'' if beats else ' (not better)'}")
        add(1, (HOLDS if ok else FAILS) if seen else NOT_MEASURED,
            f"error minus random's, at {top_txt}: " + "; ".join(parts))

        # 2. magnitude after training vs every at-init method, averaged over sparsities
        after = _curve(g, AFTER)
        parts, ok, seen = [], True, False
        for m in AT_INIT:
            c = _compare(after, _curve(g, m), metric, tolerance_pp)
            if c is None:
                continue
            seen = True
            beats = c["delta"] < -c["bar"]
            ok &= beats
            parts.append(f"vs {m}: {_pp(c)}{'' if beats else ' (not better)'}")
        add(2, (HOLDS if ok else FAILS) if seen else NOT_MEASURED,
            "magnitude-after-training's error minus each method's, mean over sparsities: "
            + "; ".join(parts))

        # 3. shuffle / reinit at init: no rise beyond the bar
        parts, ok, seen = [], True, False
        for m in AT_INIT:
            for how in ("shuffle", "reinit"):
                c = _compare(_curve(g, m, how), _curve(g, m), metric, tolerance_pp)
                if c is None:
                    continue
                seen = True
                hurts = c["delta"] > c["bar"]
                ok &= not hurts
                parts.append(f"{m}/{how}: {_pp(c)}{' (worse)' if hurts else ''}")
        add(3, (HOLDS if ok else FAILS) if seen else NOT_MEASURED,
            "ablated minus unablated error, mean over sparsities: " + "; ".join(parts))

        # 4. inversion hurts SNIP and SynFlow; GraSP's change reported
        parts, ok, seen = [], True, False
        for m in ("snip", "synflow", "grasp"):
            c = _compare(_curve(g, m, "invert"), _curve(g, m), metric, tolerance_pp)
            if c is None:
                continue
            hurts = c["delta"] > c["bar"]
            if m != "grasp":
                seen = True
                ok &= hurts
            parts.append(f"{m}: {_pp(c)} ({'worse' if hurts else 'not worse'}"
                         + (", reported only" if m == "grasp" else "") + ")")
        add(4, (HOLDS if ok else FAILS) if seen else NOT_MEASURED,
            "inverted minus unablated error, mean over sparsities: " + "; ".join(parts))

        # 5. shuffle / reinit after training: a rise beyond the bar for each
        parts, ok, seen = [], True, False
        for how in ("shuffle", "reinit"):
            c = _compare(_curve(g, AFTER, how), after, metric, tolerance_pp)
            if c is None:
                continue
            seen = True
            hurts = c["delta"] > c["bar"]
            ok &= hurts
            parts.append(f"{how}: {_pp(c)}{'' if hurts else ' (not worse)'}")
        add(5, (HOLDS if ok else FAILS) if seen else NOT_MEASURED,
            "magnitude-after-training ablated minus unablated error, mean over sparsities: "
            + "; ".join(parts))
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_text(claims: pd.DataFrame) -> str:
    """One sentence per network and claim, for a caption."""
    return " ".join(f"{r.network}, claim {r.claim} ({r.statement}): {r.verdict}."
                    for r in claims.itertuples())
