"""The benchmark's stated checks, each a fixed rule over the summarised arms (never tuned to a run): is the run an
instrument (issue 14), does DCA beat the baseline on the tail group, and does a DCA arm do no harm (issue 25)."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence


# issue 14: what makes the benchmark an instrument that can tell arms apart
FULL_MEAN_MIN, FULL_TAIL_MIN, BASELINE_TAIL_GAP = 0.70, 0.50, 0.15


def instrument_check(summary: Mapping) -> Dict[str, object]:
    """Has the all-labels arm learned the classes (else no arm's number for them means anything), and is there
    room between the labeled-only baseline and it on the tail group?"""
    arms = summary["arms"]
    groups = list(summary["groups"])
    if "full" not in arms or not groups:
        return {"checked": False, "why": "no 'full' arm (or no class groups) in this run"}
    tail = groups[-1]
    full_mean = arms["full"]["dice"]["mean"]["mean"]
    full_tail = arms["full"]["dice"][f"group:{tail}"]["mean"]
    base_tail = arms["baseline"]["dice"][f"group:{tail}"]["mean"]
    return {"checked": True, "tail_group": tail, "full_mean": full_mean, "full_tail": full_tail,
            "baseline_tail": base_tail,
            "full_converged": bool(full_mean >= FULL_MEAN_MIN and full_tail >= FULL_TAIL_MIN),
            "room_on_tail": bool(full_tail - base_tail >= BASELINE_TAIL_GAP),
            "thresholds": {"full_mean": FULL_MEAN_MIN, "full_tail": FULL_TAIL_MIN,
                           "baseline_tail_gap": BASELINE_TAIL_GAP}}


def verdict(summary: Mapping, seeds: Sequence[int]) -> Dict[str, object]:
    """Does DCA beat the labeled-only baseline on the tail group (and overall)? Stated, never tuned."""
    if "dca" not in summary["arms"]:
        return {}
    groups = list(summary["groups"])
    tail = groups[-1] if groups else None
    d = summary["arms"]["dca"]["delta_to_baseline"]
    res: Dict[str, object] = {"mean_delta": d["mean"]["mean"]}
    if tail:
        res["tail_group"] = tail
        res["tail_delta"] = d[f"group:{tail}"]["mean"]
        res["tail_delta_std"] = d[f"group:{tail}"]["std"]
        res["n_seeds"] = d[f"group:{tail}"]["n"]
        # None when no seed scored the tail (no tail class in the test references): no claim either way
        res["dca_beats_baseline_on_tail"] = (bool(d[f"group:{tail}"]["mean"] > 0) if d[f"group:{tail}"]["n"]
                                             else None)
    if "pseudolabel" in summary["arms"]:
        res["mean_delta_to_pseudolabel"] = (summary["arms"]["dca"]["dice"]["mean"]["mean"]
                                            - summary["arms"]["pseudolabel"]["dice"]["mean"]["mean"])
    return res


# issue 25: "no harm" of a DCA arm against the labeled-only baseline, on every seed of the arm
NO_HARM_TOLERANCE = 0.01  # head / middle groups may lose at most 1 Dice point


def no_harm_check(summary: Mapping, arm: str) -> Dict[str, object]:
    """On every seed the arm holds: tail group >= baseline, every other group >= baseline - 1 point, mean over
    classes >= baseline (deltas of the same seed). One losing seed fails the check: a default must not change on
    a mean that hides a loss. A group with no scored class in a seed (NaN) is left out of that seed's test."""
    entry = summary["arms"].get(arm)
    groups = list(summary["groups"])
    if entry is None or arm == "baseline" or not groups:
        return {"checked": False, "why": f"no arm {arm!r} (or no class groups) to compare with the baseline"}
    tail = groups[-1]
    failures = []
    for seed, deltas in sorted(entry["delta_per_seed"].items(), key=lambda kv: int(kv[0])):
        rules = [(f"group:{g}", 0.0 if g == tail else -NO_HARM_TOLERANCE) for g in groups] + [("mean", 0.0)]
        for key, floor in rules:
            value = deltas.get(key, math.nan)
            if not math.isnan(value) and value < floor - 1e-12:
                failures.append({"seed": int(seed), "what": key, "delta": value, "floor": floor})
    return {"checked": True, "arm": arm, "seeds": [int(s) for s in entry["delta_per_seed"]],
            "no_harm": not failures, "failures": failures, "tail_group": tail,
            "rule": f"per seed: {tail} >= baseline, other groups >= baseline - {NO_HARM_TOLERANCE * 100:.0f} point, "
                    f"mean >= baseline"}


def no_harm_line(check: Mapping) -> Optional[str]:
    """One README line for a no-harm check."""
    if not check.get("checked"):
        return None
    seeds = ", ".join(map(str, check["seeds"]))
    if check["no_harm"]:
        return f"**No harm: {check['arm']}** holds on every seed ({seeds}): {check['rule']}."
    worst = "; ".join(f"seed {f['seed']} {f['what'].replace('group:', '')} {f['delta'] * 100:+.1f}"
                      for f in check["failures"])
    return f"**Harm: {check['arm']}** fails on {worst} (seeds {seeds}; rule: {check['rule']})."
