"""Test-only trainer for the resume test (registered by a dist-info the test writes, like the discovery plug-in)."""

import os

from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA


class DCAResumeTestTrainer(nnUNetTrainerDCA):
    """3 epochs x 2 iterations, a checkpoint every epoch; DCA_TEST_CRASH_AFTER_EPOCH=N stops the process after
    epoch N's checkpoint, as a crash or a cluster time limit would."""

    def __init__(self, plans, configuration, fold, dataset_json, device=None):
        import torch

        super().__init__(plans, configuration, fold, dataset_json, device or torch.device("cuda"))
        self.num_epochs = 3
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
        self.save_every = 1

    def on_epoch_end(self):
        epoch = self.current_epoch
        super().on_epoch_end()
        if os.environ.get("DCA_TEST_CRASH_AFTER_EPOCH") == str(epoch):
            raise SystemExit(f"simulated crash after epoch {epoch}")
