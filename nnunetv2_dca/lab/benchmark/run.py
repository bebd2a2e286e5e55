"""``nnunetv2-dca benchmark``: DCA against nnU-Net baselines in one run, one output folder, everything measured here.

Every training and prediction is a stock nnU-Net console script run in a subprocess exactly as a user would type
it (all commands land in ``commands.sh``); the arms differ only in the trainer and, for two arms, the training data
(:mod:`nnunetv2_dca.lab.benchmark.arms`). Same plans, budget and seed for every arm; evaluation on the held-out test set
with :func:`nnunetv2_dca.evaluation.evaluate.evaluate_folders`. Arms, folders, budget and report: docs/benchmark.md.

Size: one class runs the benchmark's steps in their order (data, plans, each arm's train / predict / evaluate /
timing, the pseudo-label arm, the report); its helpers live in ``data.py``, ``report.py``, ``charts.py`` and
``eta.py`` of this package.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.commands import run_command
from nnunetv2_dca.lab.benchmark.arms import (ARM_NEEDS, ARM_TITLES, ARM_TRAINERS, ARMS, DCA_ARMS, DEFAULT_ARMS, DEFAULTS,
                                         FOLD, ID_DISTILL, ID_FULL, ID_PSEUDO, ID_SEMI, PLANS_DCA, PLANS_STOCK,
                                         PSEUDO_LABEL_SOURCES, arm_recipe, dca_arm_trainer)
from nnunetv2_dca.lab.benchmark import state
from nnunetv2_dca.lab.benchmark.data import (bench_class_groups, find_dataset, labeled_phantom_cases, link_tree,
                                         make_pseudo_label_dataset, write_bench_plans)
from nnunetv2_dca.lab.benchmark.eta import EtaModel, Job, format_minutes, parse_epoch_time
from nnunetv2_dca.inference import time_network_inference

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


# ---------------------------------------------------------------------------------------------- small helpers
class Runner:
    """Runs console scripts, logs them to commands.sh and prints progress."""

    def __init__(self, out: str, total_steps: int, append: bool = False):
        self.out = out
        self.log = os.path.join(out, "commands.sh")
        self.total = total_steps
        self.done = 0
        self.t0 = time.time()
        self.eta: Optional[EtaModel] = None  # set once the jobs and their cost ratios are known
        self.eta_log: List[Dict] = []  # timeline of epochs, job ends and estimates -> OUT/eta_log.json
        if append and os.path.isfile(self.log):  # a resumed run adds its commands to the earlier ones
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"# resumed {time.strftime('%Y-%m-%d %H:%M')}: data and plans of the commands above\n")
            return
        with open(self.log, "w", encoding="utf-8") as f:
            f.write("#!/usr/bin/env bash\n# commands run by `nnunetv2-dca benchmark` (nnUNet_raw/_preprocessed under "
                    "this folder, nnUNet_results under seed_<s>/)\nset -euo pipefail\n")

    def step(self, title: str) -> None:
        self.done += 1
        elapsed = time.time() - self.t0
        eta = ""
        if self.eta is not None:
            eta = f", run: {format_minutes(self.eta.remaining())} left"
        print(f"[{self.done}/{self.total}] {title} ({elapsed / 60:.1f} min elapsed{eta})", flush=True)

    def run(self, cmd: List[str], env: Mapping[str, str], env_shown: Sequence[str] = (),
            on_line: Optional[Callable[[str], None]] = None) -> float:
        """Run one command into the run's command log (commands.run_command), its output streamed line by line to
        ``on_line``."""
        return run_command(cmd, env, log=self.log, env_shown=env_shown, echo="  $ ", on_line=on_line,
                           error=BenchmarkError)

    def epoch_progress(self, job: Job, epochs: int) -> Callable[[str], None]:
        """Line handler for a training: feeds nnU-Net's epoch times to the ETA, prints elapsed/remaining per arm
        after the first epoch and then every tenth of the run."""
        started = time.time()
        every = max(1, epochs // 10)

        def on_line(text: str) -> None:
            seconds = parse_epoch_time(text)
            if seconds is None or self.eta is None:
                return
            self.eta.epoch_done(job, seconds, time.time() - started)
            self.log_eta("epoch", job, seconds, time.time() - started)
            n = len(self.eta.epoch_times[job])
            if n == 1 or n % every == 0 or n == epochs:
                print(f"    {job[0]} seed {job[1]}: epoch {n}/{epochs}, {(time.time() - started) / 60:.1f} min "
                      f"elapsed, arm: {format_minutes(self.eta.job_remaining(job))} left, run: "
                      f"{format_minutes(self.eta.remaining())} left", flush=True)
        return on_line

    def log_eta(self, event: str, job: Job, seconds: float, since_job_start: Optional[float] = None) -> None:
        """Record an epoch or a job end with the estimates made at that moment (tests replay such logs)."""
        assert self.eta is not None
        self.eta_log.append({"t": time.time() - self.t0, "event": event, "job": list(job), "seconds": seconds,
                             "since_job_start": since_job_start, "estimate_arm": self.eta.job_remaining(job),
                             "estimate_run": self.eta.remaining()})
        if event == "done":
            write_json_atomic({"jobs": [list(j) for j in self.eta.jobs], "epochs": self.eta.epochs,
                               "cost_ratio": self.eta.cost_ratio, "events": self.eta_log},
                              os.path.join(self.out, "eta_log.json"))


# ------------------------------------------------------------------------------------------------- the run
class Benchmark:
    def __init__(self, cfg: BenchmarkConfig):
        cfg.validate()
        self.cfg = cfg
        self.out = os.path.abspath(cfg.out)
        self.raw = os.path.join(self.out, "nnUNet_raw")
        self.pre = os.path.join(self.out, "nnUNet_preprocessed")
        self.arms = [a for a in ARMS if a in cfg.arms]  # fixed order: pseudolabel after baseline
        self.results: Dict[str, Dict[int, Dict]] = {a: {} for a in self.arms}
        self.timings: Dict[str, Dict[int, Dict]] = {a: {} for a in self.arms}
        self.site_results: Dict[str, Dict[int, Dict[int, Dict]]] = {a: {} for a in self.arms}
        self.curves: Dict[str, Dict[int, Optional[Dict]]] = {a: {} for a in self.arms}  # learning curves
        # pseudo-label quality on the unlabeled training images (when their true labels are known)
        self.pseudo_quality: Dict[str, Dict[int, Dict]] = {a: {} for a in self.arms if a in PSEUDO_LABEL_SOURCES}

    # environment of every command
    def env(self, seed: Optional[int] = None, training: bool = False, epochs: Optional[int] = None,
            results: str = "nnUNet_results") -> Dict[str, str]:
        from nnunetv2_dca.lab.demo import nnunet_env
        from nnunetv2_dca.training.budget import ENV_EPOCHS, ENV_ITERATIONS, ENV_SEED, ENV_VAL_ITERATIONS

        # the demo's environment (PATH, the three folders under OUT; on CPU one process for nnU-Net's pools and data
        # augmentation in the main process), with nnUNet_results per seed
        env = nnunet_env(self.out, training=training and self.cfg.device == "cpu")
        env["nnUNet_results"] = os.path.join(self.out, f"seed_{seed if seed is not None else 'none'}", results)
        if training:
            env[ENV_EPOCHS] = str(epochs or self.cfg.epochs)
            env[ENV_ITERATIONS] = str(self.cfg.iterations)
            env[ENV_VAL_ITERATIONS] = str(self.cfg.val_iterations)
            env[ENV_SEED] = str(seed)
        return env

    def training_env_keys(self) -> List[str]:
        from nnunetv2_dca.training.budget import (ENV_EPOCHS, ENV_ITERATIONS, ENV_SEED, ENV_VAL_ITERATIONS)

        keys = ["nnUNet_results", ENV_EPOCHS, ENV_ITERATIONS, ENV_VAL_ITERATIONS, ENV_SEED]
        return (["nnUNet_def_n_proc", "nnUNet_n_proc_DA"] if self.cfg.device == "cpu" else []) + keys

    def total_steps(self) -> int:
        per_seed = len(self.arms) + sum(1 for a in ("pseudolabel", "dca_distill") if a in self.arms)
        return 3 + len(self.cfg.seeds) * per_seed + 1

    # ---- data
    def check_source_outside_out(self) -> None:
        """-d hard-links the dataset from $nnUNet_raw: that folder must not lie inside OUT, whose nnU-Net folders
        and seeds a run deletes and rebuilds."""
        user_raw = os.environ.get("nnUNet_raw")
        if self.cfg.dataset is None or not user_raw:
            return
        src, out = os.path.realpath(user_raw), os.path.realpath(self.out)
        if src == out or src.startswith(out + os.sep):
            raise state.BenchmarkStateError(
                f"-d reads $nnUNet_raw={user_raw}, which lies inside --out {self.out} (the benchmark deletes and "
                f"rebuilds its nnU-Net folders there): choose another --out, or keep the dataset outside it")

    def check_user_datasets(self) -> None:
        """-d / --full-dataset: read the datasets before anything is written (a bad file would otherwise stop a
        stock command minutes later with a traceback): nnunetv2_dca.data.rawcheck."""
        if self.cfg.dataset is None:
            return
        from nnunetv2_dca.data.rawcheck import check_raw_dataset

        user_raw = os.environ.get("nnUNet_raw")
        if not user_raw:
            raise ValueError("-d needs $nnUNet_raw (the benchmark hard-links the dataset from there)")
        check_raw_dataset(find_dataset(user_raw, self.cfg.dataset), test=True, unlabeled=True)
        if self.cfg.full_dataset is not None:
            check_raw_dataset(find_dataset(user_raw, self.cfg.full_dataset))

    def prepare_data(self, runner: Runner) -> None:
        from nnunetv2_dca.data.phantom import write_phantom_dataset
        from nnunetv2_dca.data.split import make_semi_supervised_split

        cfg = self.cfg
        for old in ("test_sites",):
            shutil.rmtree(os.path.join(self.out, old), ignore_errors=True)
        if os.path.isdir(self.raw):
            shutil.rmtree(self.raw)
        if os.path.isdir(self.pre):
            shutil.rmtree(self.pre)
        os.makedirs(self.raw)
        os.makedirs(self.pre)
        runner.step("data")
        if cfg.dataset is None:
            n_train = cfg.phantom_labeled + cfg.phantom_unlabeled
            # one fully labeled phantom; the semi-supervised dataset keeps the first cases (of site 0) labeled
            write_phantom_dataset(self.raw, ID_FULL, labeled=n_train, unlabeled=0, test=cfg.phantom_test,
                                  seed=cfg.phantom_seed, size=cfg.phantom_size, sites=cfg.sites)
            labeled = labeled_phantom_cases(n_train, cfg.phantom_labeled, cfg.sites)
            make_semi_supervised_split(self.raw, ID_FULL, ID_SEMI, labeled_cases=labeled, name="AbdomenPhantomSemi",
                                       preprocessed_dir=self.pre)
            with open(runner.log, "a", encoding="utf-8") as f:
                f.write(f"nnunetv2-dca phantom -d {ID_FULL} --labeled {n_train} --unlabeled 0 --test "
                        f"{cfg.phantom_test} --seed {cfg.phantom_seed} --size {cfg.phantom_size} --sites "
                        f"{cfg.sites}\n"
                        f"nnunetv2-dca split -d {ID_FULL} --out-id {ID_SEMI} --labeled-cases {','.join(labeled)} "
                        f"--name AbdomenPhantomSemi\n")
            self.has_full = True
        else:
            user_raw = os.environ.get("nnUNet_raw")
            if not user_raw:
                raise ValueError("-d needs $nnUNet_raw (the benchmark hard-links the dataset from there)")
            src = find_dataset(user_raw, cfg.dataset)
            link_tree(src, os.path.join(self.raw, f"Dataset{ID_SEMI:03d}_" + os.path.basename(src).split("_", 1)[1]))
            self.has_full = cfg.full_dataset is not None
            if self.has_full:
                full = find_dataset(user_raw, cfg.full_dataset)
                link_tree(full, os.path.join(self.raw, f"Dataset{ID_FULL:03d}_" + os.path.basename(full).split("_", 1)[1]))
        self.semi = find_dataset(self.raw, ID_SEMI)
        for sub in ("imagesTs", "labelsTs", "imagesTrUnlabeled"):
            if not os.path.isdir(os.path.join(self.semi, sub)):
                raise ValueError(f"{self.semi} has no {sub}/: the benchmark needs unlabeled images and a labeled test "
                                 f"set (make one with `nnunetv2-dca split`)")

    def plan(self, runner: Runner) -> None:
        cfg = self.cfg
        runner.step("plan and preprocess (DCA planner; labeled + unlabeled images)")
        runner.run(["nnUNetv2_plan_and_preprocess", "-d", str(ID_SEMI), "-pl", cfg.planner, "-c", cfg.configuration,
                    "-np", "1", "-npfp", "1", "--verify_dataset_integrity"], self.env())
        from nnunetv2_dca.discovery import find_registered_class

        planner = find_registered_class(cfg.planner)
        if planner is None or not hasattr(planner, "dca_plans_name"):
            raise ValueError(f"--planner {cfg.planner!r} is not a DCA planner (nnUNetPlannerDCA, "
                             f"nnUNetPlannerDCAResEncM/L/XL, nnUNetPlannerDCA_CPU)")
        plans_name = planner.dca_plans_name
        self.pre_semi = os.path.join(self.pre, os.path.basename(self.semi))
        self.plans_files = write_bench_plans(self.pre_semi, plans_name, cfg.configuration, cfg.width, cfg.batch_size)
        with open(runner.log, "a", encoding="utf-8") as f:
            f.write(f"# {PLANS_DCA}.json and {PLANS_STOCK}.json: copies of {plans_name}.json with the DCA network and "
                    f"nnU-Net's network of the same encoder (width {cfg.width or 'as planned'}, batch size "
                    f"{cfg.batch_size or 'as planned'}); see "
                    f"nnunetv2_dca/lab/benchmark/run.py\n")
        if self.has_full and "full" in self.arms:
            runner.step("plans for the fully labeled dataset (nnU-Net's plan transfer)")
            self.transfer_plans(runner, ID_FULL)

    def transfer_plans(self, runner: Runner, target_id: int) -> None:
        env = self.env()
        runner.run(["nnUNetv2_extract_fingerprint", "-d", str(target_id), "-np", "1"], env)
        # nnU-Net's planner copies dataset.json into nnUNet_preprocessed; the transfer recipe skips the planner
        name = os.path.basename(find_dataset(self.raw, target_id))
        shutil.copy2(os.path.join(self.raw, name, "dataset.json"), os.path.join(self.pre, name, "dataset.json"))
        with open(runner.log, "a", encoding="utf-8") as f:
            f.write(f'cp "$nnUNet_raw/{name}/dataset.json" "$nnUNet_preprocessed/{name}/"\n')
        runner.run(["nnUNetv2_move_plans_between_datasets", "-s", str(ID_SEMI), "-t", str(target_id),
                    "-sp", PLANS_STOCK, "-tp", PLANS_STOCK], env)
        runner.run(["nnUNetv2_preprocess", "-d", str(target_id), "-plans_name", PLANS_STOCK, "-c",
                    self.cfg.configuration, "-np", "1"], env)

    # ---- arms
    def train_predict(self, runner: Runner, arm: str, seed: int, dataset_id: int, plans: str,
                      epochs: Optional[int] = None) -> None:
        cfg = self.cfg
        trainer = ARM_TRAINERS[arm]
        # baseline_wallclock shares trainer, plans and dataset with the baseline: its own nnUNet_results folder
        results_dir = "nnUNet_results" if arm != "baseline_wallclock" else "nnUNet_results_wallclock"
        env = self.env(seed, training=True, epochs=epochs, results=results_dir)
        job_start = time.time()
        runner.run(["nnUNetv2_train", str(dataset_id), cfg.configuration, FOLD, "-tr", trainer, "-p", plans,
                    "-device", cfg.device], env, self.training_env_keys(),
                   on_line=runner.epoch_progress((arm, seed), epochs or cfg.epochs))
        train_wall = time.time() - job_start  # the whole nnUNetv2_train process: imports and set-up included
        from nnunetv2_dca.training.budget import load_timing

        model = os.path.join(env["nnUNet_results"], os.path.basename(find_dataset(self.raw, dataset_id)),
                             f"{trainer}__{plans}__{cfg.configuration}", f"fold_{FOLD}")
        timing = load_timing(model)
        pred = os.path.join(self.out, f"seed_{seed}", "predictions", arm)
        predict = ["nnUNetv2_predict", "-i", os.path.join(self.semi, "imagesTs"), "-o", pred, "-d", str(dataset_id),
                   "-c", cfg.configuration, "-f", FOLD, "-tr", trainer, "-p", plans, "-device", cfg.device,
                   "-npp", "0", "-nps", "0"] + ([] if cfg.tta else ["--disable_tta"])
        seconds = runner.run(predict, self.env(seed, results=results_dir), ["nnUNet_results"])
        inference = time_network_inference(os.path.dirname(model), os.path.join(self.semi, "imagesTs"),
                                           self.file_ending, cfg.device, cfg.tta)
        n_cases = len([f for f in os.listdir(pred) if f.endswith(self.file_ending)])
        per_iter = timing["seconds_per_iteration_per_epoch"]
        steady = per_iter[1:] if len(per_iter) > 1 else per_iter
        self.timings[arm][seed] = {
            "seconds_per_iteration": statistics.median(steady),
            "seconds_per_iteration_per_epoch": per_iter,
            "training_seconds": sum(per_iter) * (timing["budget"]["iterations"]),
            "epochs": timing["budget"]["epochs"],
            "train_wall_seconds": train_wall,
            "time_breakdown_seconds": timing.get("time_breakdown_seconds", {}),
            "predict_wall_seconds": seconds, "predict_cases": n_cases,
            "inference_seconds_per_case": inference,
            "model_folder": model,
        }
        self.curves[arm][seed] = {k: timing.get(k, []) for k in ("validation_dice_per_class_per_epoch",
                                                                 "validation_mean_dice_per_epoch")}
        self.curves[arm][seed]["iterations_per_epoch"] = timing["budget"]["iterations"]
        self.results[arm][seed] = self.evaluate(pred)
        if self.cfg.sites > 1:
            self.site_results[arm][seed] = {
                site: self.evaluate(pred, ref_folder=folder, output_folder=os.path.join(pred, f"site_{site}"))
                for site, folder in self.site_reference_folders().items()}
        if arm in self.pseudo_quality and self.has_full:
            self.pseudo_quality[arm][seed] = self.score_pseudo_labels(os.path.dirname(model))
        state.save_result(self.out, seed, arm, self.arm_key(arm, epochs), self.record(arm, seed))
        if runner.eta is not None:
            runner.eta.job_done((arm, seed), time.time() - job_start)
            runner.log_eta("done", (arm, seed), time.time() - job_start)

    # ---- stored results (nnunetv2_dca.lab.benchmark.state)
    def arm_key(self, arm: str, epochs: Optional[int] = None) -> Dict:
        return state.arm_key(self.cfg, arm, ARM_TRAINERS[arm], epochs, arm_recipe(arm))

    def record(self, arm: str, seed: int) -> Dict:
        rec = {"evaluation": self.results[arm][seed], "timing": self.timings[arm][seed],
               "curve": self.curves[arm].get(seed)}
        if seed in self.site_results.get(arm, {}):
            rec["sites"] = self.site_results[arm][seed]
        if seed in self.pseudo_quality.get(arm, {}):
            rec["pseudo_quality"] = self.pseudo_quality[arm][seed]
        return rec

    def restore(self, arm: str, seed: int, rec: Mapping) -> None:
        """Put a stored record back where a fresh training would have left its results."""
        for table in (self.results, self.timings, self.curves, self.site_results):
            table.setdefault(arm, {})
        self.results[arm][seed] = rec["evaluation"]
        self.timings[arm][seed] = rec["timing"]
        self.curves[arm][seed] = rec.get("curve")
        if "sites" in rec:
            self.site_results[arm][seed] = {int(k): v for k, v in rec["sites"].items()}
        if "pseudo_quality" in rec and arm in PSEUDO_LABEL_SOURCES:
            self.pseudo_quality.setdefault(arm, {})[seed] = rec["pseudo_quality"]

    def wallclock_epochs(self, seed: int) -> int:
        """Epochs that give the baseline DCA's training time of this seed (same iterations per epoch)."""
        base = self.timings["baseline"][seed]["seconds_per_iteration"]
        dca = self.timings["dca"][seed]["seconds_per_iteration"]
        return max(self.cfg.epochs, round(self.cfg.epochs * dca / base))

    def score_pseudo_labels(self, model_dir: str) -> Dict:
        """Pseudo-labels of a trained model on the unlabeled training images, scored against their true labels in
        the fully labeled dataset (:mod:`nnunetv2_dca.lab.pseudo_labels`); groups as planned for DCA."""
        from nnunetv2_dca.lab.pseudo_labels import PseudoLabelError, pseudo_label_quality

        groups = bench_class_groups(os.path.dirname(self.plans_files[PLANS_DCA]), self.dataset_json,
                                    self.cfg.configuration)
        try:
            return pseudo_label_quality(model_dir, os.path.join(self.semi, "imagesTrUnlabeled"),
                                        os.path.join(find_dataset(self.raw, ID_FULL), "labelsTr"), fold=FOLD,
                                        device=self.cfg.device, class_groups=groups)
        except PseudoLabelError as e:  # e.g. a user's full dataset without the unlabeled cases: report, go on
            print(f"pseudo-label quality not measured: {e}", flush=True)
            return {"error": str(e)}

    def evaluate(self, pred: str, ref_folder: Optional[str] = None, output_folder: Optional[str] = None) -> Dict:
        from nnunetv2_dca.evaluation.evaluate import evaluate_folders

        return evaluate_folders(ref_folder or os.path.join(self.semi, "labelsTs"), pred,
                                os.path.join(self.semi, "dataset.json"), plans_file=self.plans_files[PLANS_DCA],
                                output_folder=output_folder)

    def site_reference_folders(self) -> Dict[int, str]:
        """Test labels per phantom site (hard links under OUT/test_sites/site_<k>), from the phantom's phantom.json."""
        if getattr(self, "_site_folders", None) is None:
            with open(os.path.join(find_dataset(self.raw, ID_FULL), "phantom.json"), encoding="utf-8") as f:
                cases = json.load(f)["cases"]
            folders: Dict[int, str] = {}
            for fname in sorted(os.listdir(os.path.join(self.semi, "labelsTs"))):
                case = fname[:-len(self.file_ending)]
                site = int(cases[case]["site"])
                folder = os.path.join(self.out, "test_sites", f"site_{site}")
                os.makedirs(folder, exist_ok=True)
                if not os.path.exists(os.path.join(folder, fname)):
                    os.link(os.path.join(self.semi, "labelsTs", fname), os.path.join(folder, fname))
                folders[site] = folder
            self._site_folders = dict(sorted(folders.items()))
        return self._site_folders

    def pseudo_label_arm(self, runner: Runner, seed: int, index: int) -> None:
        cfg = self.cfg
        runner.step(f"seed {seed}: pseudo-label the unlabeled images with the baseline, build the dataset")
        pl = os.path.join(self.out, f"seed_{seed}", "pseudo_labels")
        runner.run(["nnUNetv2_predict", "-i", os.path.join(self.semi, "imagesTrUnlabeled"), "-o", pl, "-d",
                    str(ID_SEMI), "-c", cfg.configuration, "-f", FOLD, "-tr", ARM_TRAINERS["baseline"], "-p",
                    PLANS_STOCK, "-device", cfg.device, "-npp", "0", "-nps", "0"]
                   + ([] if cfg.tta else ["--disable_tta"]), self.env(seed), ["nnUNet_results"])
        pid = ID_PSEUDO + index
        make_pseudo_label_dataset(self.raw, self.semi, pl, pid)
        with open(runner.log, "a", encoding="utf-8") as f:
            f.write(f"# Dataset{pid:03d}: imagesTr+labelsTr of Dataset{ID_SEMI:03d} plus imagesTrUnlabeled with the "
                    f"labels predicted above (hard links), written by the benchmark\n")
        self.transfer_plans(runner, pid)
        runner.step(f"seed {seed}: arm pseudolabel ({ARM_TITLES['pseudolabel']})")
        self.train_predict(runner, "pseudolabel", seed, pid, PLANS_STOCK)

    def distill_arm(self, runner: Runner, seed: int, index: int) -> None:
        cfg = self.cfg
        runner.step(f"seed {seed}: distill the DCA model into a dataset for a plain nnU-Net (nnunetv2-dca distill)")
        did = ID_DISTILL + index
        model = os.path.dirname(self.timings["dca"][seed]["model_folder"])
        runner.run(["nnunetv2-dca", "distill", "-m", model, "-f", FOLD, "--out-id", str(did), "--no-plan",
                    "--overwrite", "-device", cfg.device], self.env(seed), ["nnUNet_results"])
        self.transfer_plans(runner, did)
        runner.step(f"seed {seed}: arm dca_distill ({ARM_TITLES['dca_distill']})")
        self.train_predict(runner, "dca_distill", seed, did, PLANS_STOCK)

    def run(self) -> Dict:
        # the report code is loaded now, so an hour-long run never ends on an import error of its last step
        from nnunetv2_dca.lab.benchmark import report as _report  # noqa: F401
        from nnunetv2_dca.evaluation import gates as _gates  # noqa: F401

        cfg = self.cfg
        # before anything is written or deleted: the run deletes only inside a folder it made
        state.check_out_folder(self.out)
        self.check_source_outside_out()
        self.check_user_datasets()
        os.makedirs(self.out, exist_ok=True)
        reuse = state.check_state(self.out, cfg, cfg.fresh)
        if reuse and not (os.path.isdir(self.raw) and os.path.isdir(self.pre)):
            # e.g. a fresh clone holding only the committed results: the (deterministic) data and plans are rebuilt,
            # the stored arms stay valid for the same data key
            reuse = False
        if cfg.fresh:
            for seed_dir in [d for d in os.listdir(self.out) if d.startswith("seed_")]:
                shutil.rmtree(os.path.join(self.out, seed_dir))
        if not reuse:
            # the marker before anything else is written (commands.sh): a run killed from here on leaves a folder the
            # next run recognises, and plans_ready=False makes it rebuild the data and plans from scratch
            state.write_state(self.out, cfg, plans_ready=False)
        runner = Runner(self.out, self.total_steps(), append=reuse)
        t_start = time.time()
        if reuse:
            runner.step("data and plans: reused from an earlier run with the same settings")
            self.semi = find_dataset(self.raw, ID_SEMI)
            self.has_full = cfg.dataset is None or cfg.full_dataset is not None
            self.pre_semi = os.path.join(self.pre, os.path.basename(self.semi))
            self.plans_files = {p: os.path.join(self.pre_semi, p + ".json") for p in (PLANS_DCA, PLANS_STOCK)}
        else:
            self.prepare_data(runner)
        with open(os.path.join(self.semi, "dataset.json"), encoding="utf-8") as f:
            self.dataset_json = json.load(f)
        self.file_ending = self.dataset_json["file_ending"]
        if not reuse:
            self.plan(runner)
            state.write_state(self.out, cfg, plans_ready=True)
        todo = []
        for seed in cfg.seeds:
            for arm in self.arms:
                rec = state.load_result(self.out, seed, arm, self.arm_key(arm, self.stored_epochs(arm, seed)))
                if rec is not None:
                    self.restore(arm, seed, rec)
                else:
                    todo.append((arm, seed))
        runner.eta = EtaModel(todo, cfg.epochs, self.eta_cost_ratios())
        for index, seed in enumerate(cfg.seeds):
            for arm in self.arms:
                if (arm, seed) not in todo:
                    runner.step(f"seed {seed}: arm {arm}: done in an earlier run "
                                f"({state.result_path(self.out, seed, arm)})")
                    continue
                if arm == "pseudolabel":
                    self.pseudo_label_arm(runner, seed, index)
                    continue
                if arm == "dca_distill":
                    self.distill_arm(runner, seed, index)
                    continue
                runner.step(f"seed {seed}: arm {arm} ({ARM_TITLES[arm]})")
                dataset_id = ID_FULL if arm == "full" else ID_SEMI
                plans = PLANS_DCA if arm in DCA_ARMS else PLANS_STOCK
                epochs = self.wallclock_epochs(seed) if arm == "baseline_wallclock" else None
                self.train_predict(runner, arm, seed, dataset_id, plans, epochs)
        self.load_other_seeds()
        runner.step("report")
        report = self.report(time.time() - t_start, runner)
        print(f"benchmark done in {(time.time() - t_start) / 60:.1f} min; report: "
              f"{os.path.join(self.out, 'README.md')}", flush=True)
        return report

    def stored_epochs(self, arm: str, seed: int) -> Optional[int]:
        """The epochs an arm's stored result must have been trained with (None: the budget's)."""
        if arm != "baseline_wallclock":
            return None
        if seed in self.timings.get("baseline", {}) and seed in self.timings.get("dca", {}):
            return self.wallclock_epochs(seed)
        return -1  # its inputs are retrained in this run: never reuse it

    def load_other_seeds(self) -> None:
        """Results of seeds stored by earlier invocations (same settings) join this run's report."""
        for seed, arms in sorted(state.stored_results(self.out).items()):
            if seed in self.cfg.seeds:
                continue
            for arm in [a for a in ARMS if a in arms]:
                epochs = None
                if arm == "baseline_wallclock":  # its epochs came from that seed's baseline and dca timings
                    with open(state.result_path(self.out, seed, arm), encoding="utf-8") as f:
                        epochs = json.load(f).get("key", {}).get("epochs")
                rec = state.load_result(self.out, seed, arm, self.arm_key(arm, epochs))
                if rec is None:
                    print(f"  {state.result_path(self.out, seed, arm)}: other budget or settings, left out of the "
                          f"report", flush=True)
                    continue
                if arm not in self.arms:
                    self.arms = [a for a in ARMS if a in self.arms or a == arm]
                    if arm in PSEUDO_LABEL_SOURCES:
                        self.pseudo_quality.setdefault(arm, {})
                self.restore(arm, seed, rec)

    def report_seeds(self) -> List[int]:
        """Every seed with a baseline result, this run's and earlier runs' (same settings)."""
        return sorted(self.results["baseline"])

    def eta_cost_ratios(self) -> Dict[str, float]:
        """Cost per epoch relative to the baseline, for the ETA of arms not measured yet: the ratio of the
        networks' training-step FLOPs per labeled patch (forward + backward, the unlabeled share included; see
        nnunetv2_dca.network.cost). A guess, replaced by measurement once the arm runs."""
        costs = self.network_costs()
        base = costs["baseline"]["training_step_gflops"]
        return {arm: c["training_step_gflops"] / base for arm, c in costs.items()}

    # ---- report
    def network_costs(self) -> Dict[str, Dict[str, float]]:
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        from nnunetv2_dca.network.cost import network_cost

        costs = {}
        for arm in self.arms:
            plans_file = self.plans_files[PLANS_DCA if arm in DCA_ARMS else PLANS_STOCK]
            with open(plans_file, encoding="utf-8") as f:
                plans = json.load(f)
            arch = plans["configurations"][self.cfg.configuration]["architecture"]
            if arm == "semimoe":
                from nnunetv2_dca.network.architectures import semi_moe_architecture
                from nnunetv2_dca.training.semi_moe import SemiMoETrainer

                t = SemiMoETrainer
                arch = semi_moe_architecture(arch, t.num_experts, t.gating, t.expert_scope)
            aggregate_labeled = False
            if arm in DCA_ARMS:  # the arm's own recipe: heads, prediction output, D_A on the labeled samples
                t = dca_arm_trainer(arm)
                arch = {**arch, "arch_kwargs": t.recipe_arch_kwargs(arch["arch_kwargs"])}
                aggregate_labeled = t.supervise_aggregation
            pm = PlansManager(plans)
            cm = pm.get_configuration(self.cfg.configuration)
            n_in = determine_num_input_channels(pm, cm, self.dataset_json)
            n_out = pm.get_label_manager(self.dataset_json).num_segmentation_heads
            costs[arm] = network_cost(arch, cm.patch_size, n_in, n_out, aggregate_labeled=aggregate_labeled)
        return costs

    def report(self, wall_seconds: float, runner: Runner) -> Dict:
        from nnunetv2_dca.lab.benchmark.report import BenchmarkResults, build_report

        results = BenchmarkResults(
            cfg=self.cfg, out=self.out, arms=list(self.arms), semi=self.semi, dataset_json=self.dataset_json,
            file_ending=self.file_ending, plans_files=self.plans_files, results=self.results, timings=self.timings,
            network_costs=self.network_costs(), commands_log=runner.log,
            site_results=self.site_results, pseudo_quality=self.pseudo_quality, seeds=self.report_seeds(),
            curves=self.curves)
        return build_report(results, wall_seconds)


def run_benchmark(cfg: BenchmarkConfig) -> Dict:
    return Benchmark(cfg).run()
