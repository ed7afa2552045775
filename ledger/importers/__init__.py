"""Importers: bring runs recorded by other tracking systems into a ledger, through the SDK.

Each source has its module (``ledger.importers.mlflow``); its client library is an optional
extra, imported only when the importer runs.
"""
