"""Planners users name after ``nnUNetv2_plan_and_preprocess -pl`` (installed as ``nnunetv2_dca.planners``)."""
