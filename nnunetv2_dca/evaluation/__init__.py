"""Evaluation of predicted segmentations: ``nnunetv2-dca evaluate``.

- :mod:`nnunetv2_dca.evaluation.metrics`: pure numpy/scipy metrics (Dice, MedPy-style surface distances ASD/HD95,
  the protocol-B nearest resize to 160 x 160 x 80, class/group means) with the exact definitions and empty-mask rules;
- :mod:`nnunetv2_dca.evaluation.evaluate`: folders, nnU-Net readers, dataset.json labels, DCA plans class groups,
  and the JSON / CSV / Markdown outputs.
"""
