"""The read models the run index maintains. Adding a read model is adding its class here."""

from __future__ import annotations

from projections.experiments import ExperimentProjection
from projections.metrics import MetricProjection
from projections.projection import Projection
from projections.runs import RunProjection
from projections.sealing import SealingProjection
from projections.studio import MetricLastProjection, SavedViewProjection

PROJECTIONS: list[type[Projection]] = [RunProjection, MetricProjection, ExperimentProjection,
                                      SealingProjection, SavedViewProjection,
                                      MetricLastProjection]
