"""Qt-free MRML helpers of CoNeSSynthesis (volumes, segmentations, the synthesis job), also used by the
headless batch script.

Importing :mod:`CoNeSCommon` first makes the ``cones`` core package importable. Nothing here imports
torch at import time: Slicer loads the modules at startup, before the first Apply has installed PyTorch.
"""

import CoNeSCommon  # noqa: F401  (its import makes ``cones`` importable)
