"""What CoNeS Synthesis and CoNeS Training share: the Slicer version check, where ``cones`` and the
bundled model are, background ``cones`` processes, first-use dependencies and the Slicer process helpers.

The package lives in the CoNeSSynthesis module folder. Slicer appends every scripted module's folder
to ``sys.path`` when it registers the module (``qSlicerScriptedLoadableModuleFactory``), and an
installed extension puts all module packages into the one ``qt-scripted-modules`` folder, so both
modules import it by name in a source checkout and installed alike (CoNeSTraining also declares
CoNeSSynthesis as a dependency).

Importing the package first checks the Slicer version (this file and :mod:`.compatibility` import on
Python 3.9, so an old Slicer gets a clear message instead of a failing import), then makes the
``cones`` core package importable (a source checkout keeps ``cones/`` at the repository root, outside
``sys.path``; see :mod:`.location`). Nothing here imports torch.
"""

from CoNeSCommon.compatibility import checkSlicerVersion

checkSlicerVersion()

from CoNeSCommon.location import makeConesImportable  # noqa: E402  (after the version check, on purpose)

makeConesImportable()
