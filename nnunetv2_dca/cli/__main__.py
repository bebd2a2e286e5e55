"""``python -m nnunetv2_dca.cli``: the same as the ``nnunetv2-dca`` console script."""

import sys

from nnunetv2_dca.cli import main

sys.exit(main())
