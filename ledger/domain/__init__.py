"""The domain layer: run statuses, errors, aggregates and their events.

Imports nothing from the rest of ``ledger`` or from ``projections``; every other layer imports it.
"""
