"""``runledger audit ...``: tamper evidence from the command line (see ``docs/audit.md``).

::

    runledger audit keygen                                   # audit.key + audit.pub (Ed25519)
    runledger audit digest [--sign audit.key] > d1.json      # keep it outside the ledger
    runledger audit verify --digest d1.json [--digest d2.json] [--public-key audit.pub]
    runledger audit verify export.rlx [--digest d1.json]     # an export file, offline
    runledger audit prove -r RUN --digest d1.json > proof.json
    runledger audit check-proof proof.json --digest d1.json  # no ledger needed
    runledger audit consistency d1.json d2.json [--out c.json]
    runledger audit consistency d1.json d2.json --proof c.json   # check a saved proof, offline

``verify``, ``check-proof`` and ``consistency`` exit with status 1 and an ``Error:`` line when
what they check does not hold.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ledger.cli import access
from ledger.cli.options import common_options, run_option, workspace_options

_DIGEST = click.Path(exists=True, dir_okay=False)


def _public_key(path: str | None) -> Any:
    if path is None:
        return None
    from ledger.domain.digest import load_public_key

    return load_public_key(path)


def _show(data: Any) -> None:
    from ledger.cli.runs import show_result

    show_result(data)


def _write_document(doc: dict[str, Any], out: str | None) -> None:
    text = json.dumps(doc, indent=1, sort_keys=True)
    if out is None:
        click.echo(text)
    else:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


public_key_option = click.option(
    "--public-key", "public_key", type=_DIGEST, metavar="FILE",
    help="Trusted Ed25519 public key (PEM, or 64 hex digits): every digest must be signed by it.")


@click.command("keygen")
@click.option("--private-key", "private_path", default="audit.key", show_default=True,
              type=click.Path(dir_okay=False), help="Where the private key goes (mode 0600).")
@click.option("--public-key", "public_path", default="audit.pub", show_default=True,
              type=click.Path(dir_okay=False), help="Where the public key goes.")
def keygen(private_path: str, public_path: str) -> None:
    """Write a new Ed25519 key pair for signing digests (needs the audit extra)."""
    from ledger.domain.digest import generate_keypair

    raw = generate_keypair(private_path, public_path)
    click.echo(f"Wrote {private_path} (keep it secret) and {public_path} (public key "
               f"{raw.hex()}).")


@click.command("digest")
@click.option("--sign", "sign", type=_DIGEST, metavar="KEY",
              help="Sign the digest with this Ed25519 private key (PEM, from `audit keygen`).")
@common_options
def digest_command(sign: str | None) -> None:
    """Print the digest of the whole log (after catching up): its tree size and Merkle root.

    Keep it outside the ledger (a file, a git commit, a message): `audit verify` checks the log
    against it later.
    """
    from ledger import audit as ledger_audit
    from ledger.domain.digest import load_private_key

    key = load_private_key(sign) if sign is not None else None
    _show(ledger_audit.digest(access.open_workspace(), sign_key=key).to_json())


@click.command("verify")
@click.argument("file", required=False, type=_DIGEST)
@click.option("--digest", "digests", multiple=True, type=_DIGEST, metavar="FILE",
              help="A digest taken earlier (repeatable; two narrow down where a change is).")
@public_key_option
@common_options
def verify_command(file: str | None, digests: tuple[str, ...], public_key: str | None) -> None:
    """Recompute the Merkle roots from the stored events and compare them with digests.

    With FILE (an export), check the file offline: its events against the digest in its
    trailer and against any --digest. Exit status 1 names the first changed position when it
    can be proven.
    """
    from ledger import audit as ledger_audit
    from ledger.domain.digest import read_digest

    kept = [read_digest(path) for path in digests]
    key = _public_key(public_key)
    if file is not None:
        report = ledger_audit.verify_export(file, kept, public_key=key)
    else:
        if not kept:
            raise click.UsageError("Give at least one --digest FILE (or an export FILE)")
        report = ledger_audit.verify(access.open_workspace(), kept, public_key=key)
    _show(report.as_dict())
    if not report.ok:
        raise click.ClickException(report.message)


@click.command("prove")
@run_option()
@click.option("--digest", "digest_path", required=True, type=_DIGEST, metavar="FILE",
              help="The digest to prove against.")
@click.option("--out", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the proof here (default: standard output).")
@workspace_options
def prove_command(run_id: str, digest_path: str, out: str | None) -> None:
    """Write inclusion proofs of every event of a run (and of its metrics) within a digest."""
    from ledger import audit as ledger_audit
    from ledger.domain.digest import read_digest

    _write_document(ledger_audit.prove(access.open_workspace(), run_id,
                                       read_digest(digest_path)), out)


@click.command("check-proof")
@click.argument("proof", type=_DIGEST)
@click.option("--digest", "digest_path", required=True, type=_DIGEST, metavar="FILE",
              help="The digest you trust (not the copy inside the proof).")
@public_key_option
@common_options
def check_proof_command(proof: str, digest_path: str, public_key: str | None) -> None:
    """Check a proof from `audit prove` against a digest, with no access to the ledger."""
    import attrs

    from ledger import audit as ledger_audit
    from ledger.audit.proofs import read_json
    from ledger.domain.digest import read_digest

    checked = ledger_audit.check_proof(read_json(proof), read_digest(digest_path),
                                       public_key=_public_key(public_key))
    _show({"ok": True, **attrs.asdict(checked)})


@click.command("consistency")
@click.argument("old", type=_DIGEST)
@click.argument("new", type=_DIGEST)
@click.option("--proof", "proof", type=_DIGEST, metavar="FILE",
              help="Check this saved consistency proof instead, with no access to the ledger.")
@click.option("--out", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the proof here, to check it offline later.")
@public_key_option
@workspace_options
def consistency_command(old: str, new: str, proof: str | None, out: str | None,
                        public_key: str | None) -> None:
    """Prove that the log of digest NEW extends the log of digest OLD: nothing before OLD's
    tree size was rewritten."""
    from ledger import audit as ledger_audit
    from ledger.audit.proofs import read_json
    from ledger.domain.digest import read_digest

    first, second = read_digest(old), read_digest(new)
    key = _public_key(public_key)
    if proof is not None:
        ledger_audit.check_consistency(read_json(proof), first, second, public_key=key)
        click.echo(f"OK: the saved proof shows that the log of {second.tree_size} events "
                   f"extends the log of {first.tree_size}.")
        return
    if key is not None:
        first.check_signature(key)
        second.check_signature(key)
    doc = ledger_audit.consistency(access.open_workspace(), first, second)
    if out is not None:
        _write_document(doc, out)
    click.echo(f"OK: the log of {second.tree_size} events extends the log of "
               f"{first.tree_size} ({len(doc['proof'])} proof hashes).")
