#!/usr/bin/env bash
# commands run by `nnunetv2-dca benchmark` (nnUNet_raw/_preprocessed under this folder, nnUNet_results under seed_<s>/)
set -euo pipefail
nnunetv2-dca phantom -d 951 --labeled 20 --unlabeled 0 --test 6 --seed 0 --size small --sites 1 --variability moderate
nnunetv2-dca split -d 951 --out-id 952 --labeled-cases phantom_0000,phantom_0001,phantom_0002,phantom_0003 --name AbdomenPhantomSemi
# class groups fixed by nnUNet_preprocessed/Dataset952_AbdomenPhantomSemi/dca_groups.json (phantom_variation.py)
nnUNetv2_plan_and_preprocess -d 952 -pl nnUNetPlannerDCA_CPU -c 2d -np 1 -npfp 1 --verify_dataset_integrity
# nnUNetPlansBenchDCA.json and nnUNetPlansBenchStock.json: copies of nnUNetPlansDCA_CPU.json with the DCA network and nnU-Net's network of the same encoder (width as planned, batch size 8); see nnunetv2_dca/lab/benchmark/run.py
nnUNetv2_extract_fingerprint -d 951 -np 1
cp "$nnUNet_raw/Dataset951_AbdomenPhantom/dataset.json" "$nnUNet_preprocessed/Dataset951_AbdomenPhantom/"
nnUNetv2_move_plans_between_datasets -s 952 -t 951 -sp nnUNetPlansBenchStock -tp nnUNetPlansBenchStock
nnUNetv2_preprocess -d 951 -plans_name nnUNetPlansBenchStock -c 2d -np 1
nnUNet_def_n_proc=1 nnUNet_n_proc_DA=0 nnUNet_results=/work/main/benchmarks/results/converged_moderate_cpu/seed_0/nnUNet_results nnUNetDCA_budget_epochs=60 nnUNetDCA_budget_iterations=250 nnUNetDCA_budget_val_iterations=4 nnUNetDCA_budget_seed=0 nnUNetv2_train 952 2d all -tr nnUNetTrainer_budget -p nnUNetPlansBenchStock -device cpu
nnUNet_results=/work/main/benchmarks/results/converged_moderate_cpu/seed_0/nnUNet_results nnUNetv2_predict -i /work/main/benchmarks/results/converged_moderate_cpu/nnUNet_raw/Dataset952_AbdomenPhantomSemi/imagesTs -o /work/main/benchmarks/results/converged_moderate_cpu/seed_0/predictions/baseline -d 952 -c 2d -f all -tr nnUNetTrainer_budget -p nnUNetPlansBenchStock -device cpu -npp 0 -nps 0 --disable_tta
nnUNet_def_n_proc=1 nnUNet_n_proc_DA=0 nnUNet_results=/work/main/benchmarks/results/converged_moderate_cpu/seed_0/nnUNet_results nnUNetDCA_budget_epochs=60 nnUNetDCA_budget_iterations=250 nnUNetDCA_budget_val_iterations=4 nnUNetDCA_budget_seed=0 nnUNetv2_train 951 2d all -tr nnUNetTrainer_budget -p nnUNetPlansBenchStock -device cpu
nnUNet_results=/work/main/benchmarks/results/converged_moderate_cpu/seed_0/nnUNet_results nnUNetv2_predict -i /work/main/benchmarks/results/converged_moderate_cpu/nnUNet_raw/Dataset952_AbdomenPhantomSemi/imagesTs -o /work/main/benchmarks/results/converged_moderate_cpu/seed_0/predictions/full -d 951 -c 2d -f all -tr nnUNetTrainer_budget -p nnUNetPlansBenchStock -device cpu -npp 0 -nps 0 --disable_tta
