"""Network stage of the pipeline: the DCA architecture (torch + dynamic_network_architectures only) and its cost
report (which reads nnU-Net plans)."""
