"""Preprocessing for nnunetv2-dca: the unlabeled image stream (see :mod:`nnunetv2_dca.preprocessing.unlabeled`)."""
