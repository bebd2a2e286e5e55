"""Trainers users name after ``nnUNetv2_train -tr`` (installed as ``nnunetv2_dca.trainers``)."""
