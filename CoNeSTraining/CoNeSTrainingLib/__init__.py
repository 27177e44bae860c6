"""Qt-free helpers of CoNeSTraining: the ``cones train`` command, its live progress and its log.

The background process machinery is shared with CoNeS Synthesis (:mod:`CoNeSCommon.jobs`), whose
import also makes the ``cones`` package importable.
"""

import CoNeSCommon  # noqa: F401  (its import makes ``cones`` importable)
