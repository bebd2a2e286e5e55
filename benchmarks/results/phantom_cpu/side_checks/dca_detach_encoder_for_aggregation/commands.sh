#!/usr/bin/env bash
# Side check of the committed benchmark: the DCA arm with detach_encoder_for_aggregation=True in the plans'
# arch_kwargs (L_un then trains only D_A and DFAM). B = the benchmark's output folder (the run used /tmp/bench_main),
# OUT = where this check writes (the run used /tmp/detach); the benchmark's budget variables, stock commands only.
set -euo pipefail
B=${B:-benchmark_output}; OUT=${OUT:-detach_check}
export nnUNet_raw=$B/nnUNet_raw nnUNet_preprocessed=$B/nnUNet_preprocessed nnUNet_results=$OUT/results
export nnUNet_def_n_proc=1 nnUNet_n_proc_DA=0 nnUNetDCA_budget_epochs=60 nnUNetDCA_budget_iterations=50 nnUNetDCA_budget_val_iterations=1 nnUNetDCA_budget_seed=0
export P=$B/nnUNet_preprocessed/Dataset952_AbdomenPhantomSemi
python - <<'PY'
import json, os
p = os.environ["P"]
with open(os.path.join(p, "nnUNetPlansBenchDCA.json")) as f:
    plans = json.load(f)
plans["plans_name"] = "nnUNetPlansBenchDCAdetach"
plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["detach_encoder_for_aggregation"] = True
with open(os.path.join(p, "nnUNetPlansBenchDCAdetach.json"), "w") as f:
    json.dump(plans, f, indent=1)
PY
nnUNetv2_train 952 2d all -tr nnUNetTrainerDCA_budget -p nnUNetPlansBenchDCAdetach -device cpu
nnUNetv2_predict -i $nnUNet_raw/Dataset952_AbdomenPhantomSemi/imagesTs -o $OUT/pred -d 952 -c 2d -f all -tr nnUNetTrainerDCA_budget -p nnUNetPlansBenchDCAdetach -device cpu -npp 0 -nps 0 --disable_tta
R=$nnUNet_raw/Dataset952_AbdomenPhantomSemi
nnunetv2-dca evaluate -ref $R/labelsTs -pred $OUT/pred -djfile $R/dataset.json -pfile $P/nnUNetPlansBenchDCA.json -o $OUT/pred
