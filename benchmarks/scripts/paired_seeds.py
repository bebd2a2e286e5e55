"""Paired-seed picture of one arm against the baseline: test Dice per group and the mean, one line per seed.

    python benchmarks/scripts/paired_seeds.py RUN_FOLDER ARM [--out PICTURE] [--title TEXT]

Reads RUN_FOLDER/benchmark.json (``per_seed_evaluation``); one colour per seed, solid where the arm is at least as
good as the baseline on that seed, dashed where it is worse. This is the README's result picture: the no-harm rule is per seed, and seed noise at the
default budget is larger than the difference of the means, so the pairs say more than two bars would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

GROUPS = ("head", "medium", "tail")


def paired_values(report: Dict, arm: str, baseline: str = "baseline") -> Dict[str, Dict[str, List[float]]]:
    """panel -> {"seeds", baseline, arm}: Dice in % per seed, on the seeds both arms have."""
    per_seed = report["per_seed_evaluation"]
    if arm not in per_seed or baseline not in per_seed:
        raise ValueError(f"benchmark.json has no per-seed results of {arm!r} and {baseline!r}; "
                         f"arms there: {', '.join(sorted(per_seed))}")
    seeds = sorted(set(per_seed[arm]) & set(per_seed[baseline]), key=int)
    if not seeds:
        raise ValueError(f"{arm!r} and {baseline!r} share no seed")

    def value(ev: Dict, panel: str) -> float:
        v = ev["foreground_mean"]["Dice"] if panel == "mean" else ev["group_mean"][panel]["Dice"]
        if v is None:
            raise ValueError(f"no {panel} Dice in a stored evaluation (a group without reference voxels?)")
        return 100.0 * v

    return {panel: {"seeds": [int(s) for s in seeds],
                    baseline: [value(per_seed[baseline][s], panel) for s in seeds],
                    arm: [value(per_seed[arm][s], panel) for s in seeds]}
            for panel in (*GROUPS, "mean")}


def plot(values: Dict, arm: str, out: str, title: str, baseline: str = "baseline",
         arm_label: Optional[str] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arm_label = arm_label or arm
    fig, axes = plt.subplots(1, len(values), figsize=(2.6 * len(values), 3.2), sharey=True)
    for ax, (panel, v) in zip(axes, values.items()):
        for i, seed in enumerate(v["seeds"]):
            a, b = v[baseline][i], v[arm][i]
            # solid: the arm at least as good as the baseline on this seed; dashed: worse
            ax.plot([0, 1], [a, b], "-o" if b >= a else "--x", color=f"C{i}", alpha=0.85, label=f"seed {seed}")
        ax.set_xticks([0, 1], ["nnU-Net" if baseline == "baseline" else baseline, arm_label])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(panel)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test Dice (%)")
    axes[0].set_ylim(0, 100)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = out + ".partial.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="benchmark --out folder with benchmark.json")
    p.add_argument("arm")
    p.add_argument("--out", default=None, help="picture (default RUN/paired_<arm>.png)")
    p.add_argument("--title", default=None)
    p.add_argument("--label", default=None, help="x label of the arm (default: its name)")
    args = p.parse_args(argv)
    path = os.path.join(args.run, "benchmark.json")
    try:
        with open(path, encoding="utf-8") as f:
            values = paired_values(json.load(f), args.arm)
    except (OSError, ValueError, KeyError) as e:
        print(f"paired_seeds: {path}: {e}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.run, f"paired_{args.arm}.png")
    plot(values, args.arm, out, args.title or f"{args.arm} vs baseline, test Dice per seed", arm_label=args.label)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
