"""The Python SDK: ``Workspace``, ``Experiment`` and ``Run``, as the Azure ML SDK v1 shaped them.

Builds on the application layer (``ledger.application``) for writes and on the query indexes
(``projections``) for every query across runs.

Importing any SDK module imports ``ledger.sdk.context`` (the top of the SDK), so the late-bound
parts -- ``ScriptRun`` registered for its run type, ``Run.get_context``'s provider -- are always in
place.
"""

import ledger.sdk.context  # noqa: F401  (see the docstring)
