"""The benchmark's stated checks, each a fixed rule over the summarised arms (never tuned to a run): is the run an
instrument (issue 14), does DCA beat the baseline on the tail group, and does a DCA arm do no harm (issue 25)."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence


# issues 14 / 26: what makes the benchmark an instrument that can tell arms apart
FULL_MEAN_MIN, FULL_TAIL_MIN, BASELINE_TAIL_GAP, BASELINE_MEAN_GAP = 0.70, 0.50, 0.15, 0.05


def instrument_check(summary: Mapping) -> Dict[str, object]:
    """Is the run an instrument (issue 26's validity rule)? The all-labels arm must have learned the classes (full
    >= 70 mean, >= 50 on the tail group: else no arm's number for them means anything), and the labeled-only
    baseline must leave room below it (>= 15 points on the tail group and >= 5 on the mean: else the labeled cases
    already cover what the test cases hold and no semi-supervised method can win). ``valid`` and ``reasons`` say
    which rule failed."""
    arms = summary["arms"]
    groups = list(summary["groups"])
    if "full" not in arms or not groups:
        return {"checked": False, "why": "no 'full' arm (or no class groups) in this run"}
    tail = groups[-1]
    full_mean = arms["full"]["dice"]["mean"]["mean"]
    full_tail = arms["full"]["dice"][f"group:{tail}"]["mean"]
    base_mean = arms["baseline"]["dice"]["mean"]["mean"]
    base_tail = arms["baseline"]["dice"][f"group:{tail}"]["mean"]
    reasons = []
    if full_mean < FULL_MEAN_MIN:
        reasons.append(f"the all-labels arm reaches {full_mean * 100:.1f} mean Dice (< {FULL_MEAN_MIN * 100:.0f})")
    if full_tail < FULL_TAIL_MIN:
        reasons.append(f"the all-labels arm reaches {full_tail * 100:.1f} on the {tail} group "
                       f"(< {FULL_TAIL_MIN * 100:.0f})")
    if full_tail - base_tail < BASELINE_TAIL_GAP:
        reasons.append(f"the baseline is only {(full_tail - base_tail) * 100:.1f} points below it on the {tail} "
                       f"group (< {BASELINE_TAIL_GAP * 100:.0f})")
    if full_mean - base_mean < BASELINE_MEAN_GAP:
        reasons.append(f"the baseline is only {(full_mean - base_mean) * 100:.1f} points below it on the mean "
                       f"(< {BASELINE_MEAN_GAP * 100:.0f})")
    return {"checked": True, "tail_group": tail, "full_mean": full_mean, "full_tail": full_tail,
            "baseline_mean": base_mean, "baseline_tail": base_tail,
            "full_converged": bool(full_mean >= FULL_MEAN_MIN and full_tail >= FULL_TAIL_MIN),
            "room_on_tail": bool(full_tail - base_tail >= BASELINE_TAIL_GAP),
            "room_on_mean": bool(full_mean - base_mean >= BASELINE_MEAN_GAP),
            "valid": not reasons, "reasons": reasons,
            "thresholds": {"full_mean": FULL_MEAN_MIN, "full_tail": FULL_TAIL_MIN,
                           "baseline_tail_gap": BASELINE_TAIL_GAP, "baseline_mean_gap": BASELINE_MEAN_GAP}}


def instrument_line(check: Mapping) -> Optional[str]:
    """One README line: valid / not valid, and why."""
    if not check.get("checked"):
        return None
    if check["valid"]:
        return (f"**Instrument: valid** -- the all-labels arm reaches {check['full_mean'] * 100:.1f} mean / "
                f"{check['full_tail'] * 100:.1f} {check['tail_group']}, the labeled-only baseline is "
                f"{(check['full_mean'] - check['baseline_mean']) * 100:.1f} / "
                f"{(check['full_tail'] - check['baseline_tail']) * 100:.1f} points below.")
    return ("**Instrument: NOT valid** -- " + "; ".join(check["reasons"]) + ". Where the all-labels arm has not "
            "learned a class, no arm's number for it means anything; where the baseline is as good, no "
            "semi-supervised method can show a gain.")


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
