set -e  # side check of the committed benchmark (B = its output folder); run from the repository root
B=/tmp/bench_main
export PATH=/work/main/.venv/bin:$PATH nnUNet_raw=$B/nnUNet_raw nnUNet_preprocessed=$B/nnUNet_preprocessed nnUNet_results=/tmp/detach/results
export nnUNet_def_n_proc=1 nnUNet_n_proc_DA=0 nnUNetDCA_budget_epochs=60 nnUNetDCA_budget_iterations=50 nnUNetDCA_budget_val_iterations=1 nnUNetDCA_budget_seed=0
P=$B/nnUNet_preprocessed/Dataset952_AbdomenPhantomSemi
python - <<'PY'
import json
p='/tmp/bench_main/nnUNet_preprocessed/Dataset952_AbdomenPhantomSemi/'
d=json.load(open(p+'nnUNetPlansBenchDCA.json'))
d['plans_name']='nnUNetPlansBenchDCAdetach'
d['configurations']['2d']['architecture']['arch_kwargs']['detach_encoder_for_aggregation']=True
json.dump(d,open(p+'nnUNetPlansBenchDCAdetach.json','w'),indent=1)
PY
nnUNetv2_train 952 2d all -tr nnUNetTrainerDCA_budget -p nnUNetPlansBenchDCAdetach -device cpu
nnUNetv2_predict -i $nnUNet_raw/Dataset952_AbdomenPhantomSemi/imagesTs -o /tmp/detach/pred -d 952 -c 2d -f all -tr nnUNetTrainerDCA_budget -p nnUNetPlansBenchDCAdetach -device cpu -npp 0 -nps 0 --disable_tta
R=$nnUNet_raw/Dataset952_AbdomenPhantomSemi
nnunetv2-dca evaluate -ref $R/labelsTs -pred /tmp/detach/pred -djfile $R/dataset.json -pfile $P/nnUNetPlansBenchDCA.json -o /tmp/detach/pred
