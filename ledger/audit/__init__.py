"""Audit: any run as it was at any moment (``ledger.audit.timeline``)."""
