"""nnunetv2-dca: semi-supervised, class-imbalance-aware segmentation as an nnU-Net v2 extension.

This module is imported at every interpreter start-up (through ``nnunetv2_dca.pth``, which installs the class
discovery hook), so it must stay free of heavy imports: no torch, no nnunetv2, no numpy here.
"""

__version__ = "0.1.0"

# Entry-point group through which classes become visible to nnU-Net's name lookups (see nnunetv2_dca.discovery).
ENTRY_POINT_GROUP = "nnunetv2_dca.classes"

# The nnunetv2 releases we are tested against; pyproject.toml's requirement says the same (a test keeps them equal).
SUPPORTED_NNUNETV2 = ">=2.8.1,<2.9"
