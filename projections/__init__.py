"""Projections: persisted read models built from a ledger's log, and the queries they answer.

``RunIndex`` (``projections.index``) is the entry point; read models are the frozen ``attrs`` rows
of ``projections.read_models``; each read model is a ``Projection`` (``projections.projection``)
registered in ``projections.registry.PROJECTIONS``.
"""

from __future__ import annotations

from projections.index import RunIndex
from projections.read_models import ExperimentRow, MetricSummaryRow, RunRow

__all__ = ["ExperimentRow", "MetricSummaryRow", "RunIndex", "RunRow"]
