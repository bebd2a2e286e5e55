"""Training stage: the semi-supervised base trainer and the DCA / Semi-MoE training procedures (the thin classes
users name after ``-tr`` live in ``trainers/``)."""
