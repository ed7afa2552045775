"""Audit of a ledger: tamper evidence (this module) and, in ``ledger.audit.timeline``, runs as of
any moment.

Tamper evidence (``ledger.audit.proofs``; see ``docs/audit.md``)::

    from ledger import Workspace, audit
    ws = Workspace()
    d1 = audit.digest(ws)                       # keep d1.to_json() outside the ledger
    report = audit.verify(ws, [d1])             # report.ok, report.first_bad_position
    doc = audit.prove(ws, run_id, d1)           # inclusion proofs of the run's events
    audit.check_proof(doc, d1)                  # pure: no ledger needed
    proof = audit.consistency(ws, d1, d2)       # d2's log extends d1's
    audit.check_consistency(proof, d1, d2)      # pure
    audit.verify_export("ledger.rlx", [d1])     # an export file, offline
"""

from __future__ import annotations

from ledger.audit.proofs import (
    CheckedProof,
    DigestCheck,
    VerifyReport,
    check_consistency,
    check_proof,
    consistency,
    digest,
    prove,
    verify,
    verify_export,
)
from ledger.domain.digest import Digest, load_private_key, load_public_key, read_digest

__all__ = [
    "CheckedProof",
    "Digest",
    "DigestCheck",
    "VerifyReport",
    "check_consistency",
    "check_proof",
    "consistency",
    "digest",
    "load_private_key",
    "load_public_key",
    "prove",
    "read_digest",
    "verify",
    "verify_export",
]
