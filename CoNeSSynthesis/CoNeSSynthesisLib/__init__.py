"""Qt-free MRML helpers of CoNeSSynthesis, shared with CoNeSTraining and the headless batch script.

Importing the package makes the ``cones`` core package importable, because a source checkout loaded
through the Extension Wizard keeps ``cones/`` at the repository root, outside Slicer's ``sys.path``
(see :mod:`CoNeSSynthesisLib.location`). Nothing here imports torch at import time: Slicer loads the
modules at startup, before the first Apply has installed PyTorch.
"""

from CoNeSSynthesisLib.location import makeConesImportable

makeConesImportable()
