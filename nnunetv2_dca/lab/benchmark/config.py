"""The benchmark's settings (``nnunetv2-dca benchmark``'s options) and its error type, checked before anything is
written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

from nnunetv2_dca.lab.benchmark.arms import ARM_NEEDS, ARMS, DEFAULT_ARMS, DEFAULTS


class BenchmarkError(RuntimeError):
    """A benchmark step failed; the message names the step and the command."""


@dataclass
class BenchmarkConfig:
    out: str
    dataset: Optional[int] = None          # user dataset (semi-supervised: imagesTr, imagesTrUnlabeled, imagesTs)
    full_dataset: Optional[int] = None     # its fully labeled source (for the 'full' arm)
    arms: Sequence[str] = DEFAULT_ARMS
    epochs: int = DEFAULTS["epochs"]
    iterations: int = DEFAULTS["iterations"]
    val_iterations: int = DEFAULTS["val_iterations"]
    width: Optional[int] = None
    batch_size: Optional[int] = DEFAULTS["batch_size"]  # labeled patches per step, every arm (None: as planned)
    seeds: Sequence[int] = (0,)
    planner: str = "nnUNetPlannerDCA_CPU"
    # 2d on CPU: a 3d_fullres step of even the 8-feature network takes seconds on 2 cores, so an hour would buy a
    # few hundred iterations; 2d gives a few thousand. On a GPU pass -c 3d_fullres.
    configuration: str = "2d"
    device: str = "cpu"
    phantom_labeled: int = DEFAULTS["phantom_labeled"]
    phantom_unlabeled: int = DEFAULTS["phantom_unlabeled"]
    phantom_test: int = DEFAULTS["phantom_test"]
    phantom_seed: int = 0
    phantom_size: str = DEFAULTS["phantom_size"]
    # classic: the phantom of every result before issue 26; varied: cases differ enough that 4 do not cover them
    phantom_variability: str = "classic"
    # domain shift (Semi-MoE's setting): phantom with this many scanner sites; labeled cases all from site 0, the
    # unlabeled images from every site, and the test set evaluated per site
    sites: int = 1
    gates_picture: bool = True
    tta: bool = False                      # nnUNetv2_predict's mirroring test-time augmentation (8x cost in 3D)
    fresh: bool = False                    # delete OUT's earlier data, plans and results instead of resuming
    extra: Dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"--arms: unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
        if "baseline" not in self.arms:
            raise ValueError("--arms must include 'baseline' (every delta is measured against it)")
        for arm, needs in ARM_NEEDS.items():
            missing = [n for n in needs if arm in self.arms and n not in self.arms]
            if missing:
                raise ValueError(f"--arms: arm {arm!r} needs {', '.join(repr(m) for m in missing)} in the same run")
        for flag, value in (("--epochs", self.epochs), ("--iterations", self.iterations),
                            ("--val-iterations", self.val_iterations)):
            if value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if self.width is not None and self.width < 1:
            raise ValueError(f"--width must be >= 1, got {self.width}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.seeds:
            raise ValueError("--seeds is empty")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds has repeats: {list(self.seeds)}")
        if self.sites < 1:
            raise ValueError(f"--sites must be >= 1, got {self.sites}")
        if self.sites > 1 and self.dataset is not None:
            raise ValueError("--sites (domain shift) works with the generated phantom only, not with -d")
        if self.dataset is None:
            if self.phantom_labeled < 1 or self.phantom_unlabeled < 1 or self.phantom_test < 1:
                raise ValueError("the phantom needs >= 1 labeled, unlabeled and test case")
            from nnunetv2_dca.data.phantom_variation import VARIABILITIES

            if self.phantom_variability not in VARIABILITIES:
                raise ValueError(f"--phantom-variability {self.phantom_variability!r}: choose one of "
                                 f"{', '.join(VARIABILITIES)}")
        elif self.phantom_variability != "classic":
            raise ValueError("--phantom-variability works with the generated phantom only, not with -d")
        elif "full" in self.arms and self.full_dataset is None:
            raise ValueError("arm 'full' needs the fully labeled source dataset: --full-dataset ID")
        if self.configuration not in ("2d", "3d_fullres", "3d_lowres"):
            raise ValueError(f"-c {self.configuration!r}: nnU-Net plans the configurations 2d, 3d_fullres and "
                             f"3d_lowres")
        from nnunetv2_dca.discovery import find_registered_class

        planner = find_registered_class(self.planner)  # before the data are made: the plans need a DCA planner
        if planner is None or not hasattr(planner, "dca_plans_name"):
            raise ValueError(f"--planner {self.planner!r} is not a DCA planner (nnUNetPlannerDCA, "
                             f"nnUNetPlannerDCAResEncM/L/XL, nnUNetPlannerDCA_CPU)")
