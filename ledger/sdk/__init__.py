"""The Python SDK: ``Workspace``, ``Experiment`` and ``Run``, as the Azure ML SDK v1 shaped them.

Builds on the application layer (``ledger.application``) for writes and on the query indexes
(``projections``) for every query across runs.
"""
