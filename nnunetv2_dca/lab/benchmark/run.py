"""``nnunetv2-dca benchmark``: DCA against nnU-Net baselines in one run, one output folder, everything measured here.

Every training and prediction is a stock nnU-Net console script run in a subprocess exactly as a user would type
it (all commands land in ``commands.sh``); the arms differ only in the trainer and, for two arms, the training data
(:mod:`nnunetv2_dca.lab.benchmark.arms`). Same plans, budget and seed for every arm; evaluation on the held-out test set
with :func:`nnunetv2_dca.evaluation.evaluate.evaluate_folders`. Arms, folders, budget and report: docs/benchmark.md.

Size: one class runs the benchmark's steps in their order (data, plans, each arm's train / predict / evaluate /
timing, the pseudo-label arm, the report); its settings live in ``config.py``, its command runner in ``runner.py``,
its helpers in ``data.py``, ``report.py``, ``charts.py`` and ``eta.py``, the arms built from another arm's
model in ``derived_arms.py`` of this package.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from typing import Dict, List, Mapping, Optional

from nnunetv2_dca.lab.benchmark.arms import (ARM_TITLES, ARM_TRAINERS, ARMS, DCA_ARMS, FOLD, ID_FULL, ID_SEMI,
                                             PLANS_DCA, PLANS_STOCK, PSEUDO_LABEL_SOURCES, arm_recipe)
from nnunetv2_dca.lab.benchmark import state
from nnunetv2_dca.lab.benchmark.data import (find_dataset, labeled_phantom_cases, link_tree, site_reference_folders,
                                             write_bench_plans, write_phantom_groups)
from nnunetv2_dca.lab.benchmark.derived_arms import distill_arm, pseudo_label_arm, score_pseudo_labels
from nnunetv2_dca.lab.benchmark.costs import arm_network_costs, cost_ratios
from nnunetv2_dca.lab.benchmark.config import BenchmarkConfig, BenchmarkError  # noqa: F401 (the CLI's import)
from nnunetv2_dca.lab.benchmark.eta import EtaModel
from nnunetv2_dca.lab.benchmark.runner import Runner
from nnunetv2_dca.inference import time_network_inference


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
                                  seed=cfg.phantom_seed, size=cfg.phantom_size, sites=cfg.sites,
                                  variability=cfg.phantom_variability)
            labeled = labeled_phantom_cases(n_train, cfg.phantom_labeled, cfg.sites)
            make_semi_supervised_split(self.raw, ID_FULL, ID_SEMI, labeled_cases=labeled, name="AbdomenPhantomSemi",
                                       preprocessed_dir=self.pre)
            groups_file = None
            if cfg.phantom_variability != "classic":
                semi_name = os.path.basename(find_dataset(self.raw, ID_SEMI))
                groups_file = write_phantom_groups(os.path.join(self.pre, semi_name))
            with open(runner.log, "a", encoding="utf-8") as f:
                f.write(f"nnunetv2-dca phantom -d {ID_FULL} --labeled {n_train} --unlabeled 0 --test "
                        f"{cfg.phantom_test} --seed {cfg.phantom_seed} --size {cfg.phantom_size} --sites "
                        f"{cfg.sites} --variability {cfg.phantom_variability}\n"
                        f"nnunetv2-dca split -d {ID_FULL} --out-id {ID_SEMI} --labeled-cases {','.join(labeled)} "
                        f"--name AbdomenPhantomSemi\n")
                if groups_file:
                    f.write(f"# class groups fixed by {os.path.relpath(groups_file, self.out)} (phantom_variation.py)\n")
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
            self.pseudo_quality[arm][seed] = score_pseudo_labels(self, os.path.dirname(model))
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

    def evaluate(self, pred: str, ref_folder: Optional[str] = None, output_folder: Optional[str] = None) -> Dict:
        from nnunetv2_dca.evaluation.evaluate import evaluate_folders

        return evaluate_folders(ref_folder or os.path.join(self.semi, "labelsTs"), pred,
                                os.path.join(self.semi, "dataset.json"), plans_file=self.plans_files[PLANS_DCA],
                                output_folder=output_folder)

    def site_reference_folders(self) -> Dict[int, str]:
        """Test labels per phantom site, linked once per run (:func:`data.site_reference_folders`)."""
        if getattr(self, "_site_folders", None) is None:
            self._site_folders = site_reference_folders(find_dataset(self.raw, ID_FULL), self.semi, self.out,
                                                        self.file_ending)
        return self._site_folders

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
                    pseudo_label_arm(self, runner, seed, index)
                    continue
                if arm == "dca_distill":
                    distill_arm(self, runner, seed, index)
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
        return cost_ratios(self.network_costs())

    # ---- report
    def network_costs(self) -> Dict[str, Dict[str, float]]:
        return arm_network_costs(self.arms, self.plans_files, self.cfg.configuration, self.dataset_json)

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
