"""nnunetv2_dca.lab.benchmark.verdicts: the no-harm rule of a DCA arm (issue 25) holds on every seed or fails, naming
the seed and the group that lost."""
import numpy as np
import pytest

from nnunetv2_dca.lab.benchmark.report import summarise_arms
from nnunetv2_dca.lab.benchmark.verdicts import no_harm_check, no_harm_line

GROUPS = {"head": [1], "medium": [2, 3], "tail": [4]}


def _result(dice):
    by_class = {str(c): d for c, d in enumerate(dice, start=1)}
    gm = {g: {"Dice": float(np.mean([by_class[str(c)] for c in m])), "classes": m} for g, m in GROUPS.items()}
    return {"mean": {c: {"Dice": d} for c, d in by_class.items()}, "labels": {c: c for c in by_class},
            "group_mean": gm, "foreground_mean": {"Dice": float(np.mean(dice))}}


def _summary(dca_per_seed):
    base = [0.9, 0.6, 0.6, 0.2]
    return summarise_arms({"baseline": {s: _result(base) for s in range(len(dca_per_seed))},
                           "dca_other": {s: _result(d) for s, d in enumerate(dca_per_seed)}},
                          list(range(len(dca_per_seed))))


def test_no_harm_holds_within_one_point_on_head_and_medium():
    # head -0.5 point, medium +5, tail +10 on both seeds
    check = no_harm_check(_summary([[0.895, 0.65, 0.65, 0.3]] * 2), "dca_other")
    assert check["checked"] and check["no_harm"] and check["seeds"] == [0, 1]
    assert no_harm_line(check).startswith("**No harm: dca_other**")


@pytest.mark.parametrize("seed1, what", [([0.87, 0.7, 0.7, 0.3], "group:head"),     # head -3 points
                                         ([0.9, 0.7, 0.7, 0.19], "group:tail"),    # tail -1 point
                                         ([0.9, 0.58, 0.58, 0.21], "group:medium")])  # medium -2 points
def test_one_losing_seed_fails_and_is_named(seed1, what):
    check = no_harm_check(_summary([[0.95, 0.8, 0.8, 0.5], seed1]), "dca_other")
    assert check["no_harm"] is False
    assert {(f["seed"], f["what"]) for f in check["failures"]} >= {(1, what)}
    assert all(f["seed"] == 1 for f in check["failures"])
    assert "seed 1" in no_harm_line(check)


def test_a_lower_mean_alone_fails():
    # groups within tolerance but the mean over classes lower: head -0.9, medium -0.9 each, tail +0
    check = no_harm_check(_summary([[0.891, 0.591, 0.591, 0.2]]), "dca_other")
    assert [f["what"] for f in check["failures"]] == ["mean"]


def test_absent_arm_is_not_checked():
    assert no_harm_check(_summary([[0.9, 0.6, 0.6, 0.2]]), "dca")["checked"] is False


def _arm(mean, tail):
    return {"dice": {"mean": {"mean": mean}, "group:tail": {"mean": tail}}}


@pytest.mark.parametrize("baseline, full, failing", [
    ((0.60, 0.20), (0.75, 0.52), []),
    ((0.62, 0.20), (0.65, 0.52), ["mean Dice (< 70)", "on the mean"]),      # full not converged, no mean room
    ((0.72, 0.20), (0.75, 0.52), ["on the mean"]),                         # baseline as good on the mean
    ((0.60, 0.45), (0.75, 0.52), ["on the tail group (< 15)"]),            # no room on the tail
    ((0.60, 0.20), (0.75, 0.40), ["on the tail group (< 50)"])])            # tail not learned by the upper bound
def test_instrument_validity_names_every_failed_rule(baseline, full, failing):
    from nnunetv2_dca.lab.benchmark.verdicts import instrument_check, instrument_line

    res = instrument_check({"groups": {"head": [1], "tail": [2]},
                            "arms": {"baseline": _arm(*baseline), "full": _arm(*full)}})
    assert res["valid"] is (not failing)
    assert len(res["reasons"]) == len(failing)
    for text, reason in zip(failing, res["reasons"]):
        assert text in reason
    assert instrument_line(res).startswith("**Instrument: valid**" if not failing else "**Instrument: NOT valid**")
