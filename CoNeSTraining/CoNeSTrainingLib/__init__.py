"""Qt-free helpers of CoNeSTraining: the ``cones train`` command, its live progress and its log.

The background process machinery is CoNeSSynthesisLib's (:mod:`CoNeSSynthesisLib.jobs`), which also
makes the ``cones`` package importable in a source checkout.
"""
