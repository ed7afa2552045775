"""Digests of the log: ``(tree_size, root_hash, time)``, optionally signed with Ed25519.

A digest is what a user keeps outside the ledger (printed, committed to git, published): the
RFC 9162 root of the first ``tree_size`` events of the log. As JSON::

    {"tree_size": 1234, "root_hash": "<64 hex digits>", "time": "2026-12-01T10:00:00+00:00",
     "store": "sqlite:///...", "signature": "<128 hex digits>", "public_key": "<64 hex digits>"}

``store``, ``signature`` and ``public_key`` are optional. The signature covers
:meth:`Digest.signed_message`: the fixed prefix ``runledger-digest-v1`` and a NUL byte, then the
canonical JSON (sorted keys, no spaces) of ``tree_size``, ``root_hash``, ``time`` and ``store``.
The ``public_key`` a digest carries is a hint only: a signature is checked against a key the
verifier trusts (``--public-key``), never against the key the digest names.

Signing needs the ``cryptography`` package (``pip install 'runledger-ml[audit]'``); it is
imported only when a key is used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from ledger.domain.errors import AuditError, DigestError, SignatureError
from ledger.domain.merkle import HASH_SIZE

SIGNED_PREFIX = b"runledger-digest-v1\x00"
INSTALL_HINT = ("Signing and checking signatures needs the cryptography package: "
                "pip install 'runledger-ml[audit]'")


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise AuditError(INSTALL_HINT) from None
    return ed25519


def _hex(value: Any, what: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise DigestError(f"The digest's {what} must be a hex string, not {value!r}")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise DigestError(f"The digest's {what} is not hex: {value!r}") from None
    if len(data) != size:
        raise DigestError(f"The digest's {what} must be {size} bytes, not {len(data)}")
    return data


@attrs.frozen
class Digest:
    """The root of the first ``tree_size`` events of a log, as a user keeps it.

    Attributes:
        tree_size: how many events (leaves) it covers.
        root_hash: the RFC 9162 root of those leaves (32 bytes).
        time: when the ledger sealed that size (ISO 8601), if known.
        store: the store it was taken from (password masked), if known.
        signature: the Ed25519 signature of :meth:`signed_message`, if signed.
        public_key: the raw public key the signer says it used (a hint, not trusted).
    """

    tree_size: int
    root_hash: bytes
    time: str | None = None
    store: str | None = None
    signature: bytes | None = None
    public_key: bytes | None = None

    def signed_message(self) -> bytes:
        """Return the bytes a signature covers (see the module docstring)."""
        body = {"tree_size": self.tree_size, "root_hash": self.root_hash.hex(),
                "time": self.time, "store": self.store}
        return SIGNED_PREFIX + json.dumps(body, sort_keys=True,
                                          separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        """Return the digest as a JSON object (optional fields left out when unset)."""
        data: dict[str, Any] = {"tree_size": self.tree_size, "root_hash": self.root_hash.hex()}
        if self.time is not None:
            data["time"] = self.time
        if self.store is not None:
            data["store"] = self.store
        if self.signature is not None:
            data["signature"] = self.signature.hex()
        if self.public_key is not None:
            data["public_key"] = self.public_key.hex()
        return data

    @classmethod
    def from_json(cls, data: Any) -> Digest:
        """Read a digest from its JSON object.

        Args:
            data: the parsed JSON.

        Returns:
            The digest.

        Raises:
            DigestError: a field is missing or malformed.
        """
        if not isinstance(data, dict):
            raise DigestError(f"A digest is a JSON object, not {type(data).__name__}")
        size = data.get("tree_size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 63:
            raise DigestError(f"The digest's tree_size must be an integer >= 0, not {size!r}")
        root_hash = _hex(data.get("root_hash"), "root_hash", HASH_SIZE)
        time, store = data.get("time"), data.get("store")
        for name, value in (("time", time), ("store", store)):
            if value is not None and not isinstance(value, str):
                raise DigestError(f"The digest's {name} must be a string, not {value!r}")
        signature = data.get("signature")
        public_key = data.get("public_key")
        return cls(size, root_hash, time, store,
                   None if signature is None else _hex(signature, "signature", 64),
                   None if public_key is None else _hex(public_key, "public_key", 32))

    def signed(self, private_key: Any) -> Digest:
        """Return this digest signed with an Ed25519 private key.

        Args:
            private_key: from :func:`load_private_key`.

        Returns:
            The digest with ``signature`` and ``public_key`` set.
        """
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        unsigned = attrs.evolve(self, signature=None, public_key=None)
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return attrs.evolve(unsigned, signature=private_key.sign(unsigned.signed_message()),
                            public_key=public)

    def check_signature(self, public_key: Any) -> None:
        """Check the signature with a trusted Ed25519 public key.

        Args:
            public_key: from :func:`load_public_key`.

        Raises:
            SignatureError: the digest is not signed, or not by this key, or was changed.
        """
        from cryptography.exceptions import InvalidSignature

        if self.signature is None:
            raise SignatureError(f"The digest of tree size {self.tree_size} is not signed, but "
                                 "a public key was given to check it")
        try:
            public_key.verify(self.signature, self.signed_message())
        except InvalidSignature:
            raise SignatureError(
                f"The signature of the digest of tree size {self.tree_size} does not verify "
                "with the given public key: the digest was changed or signed by another key"
            ) from None


def read_digest(path: str | os.PathLike[str]) -> Digest:
    """Read a digest from a JSON file.

    Args:
        path: the file.

    Returns:
        The digest.

    Raises:
        DigestError: not a digest.
        OSError: the file cannot be read.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DigestError(f"{path} is not a JSON digest: {error}") from None
    return Digest.from_json(data)


def generate_keypair(private_path: str | os.PathLike[str],
                     public_path: str | os.PathLike[str]) -> bytes:
    """Write a new Ed25519 key pair as PEM files (the private one readable by its owner only).

    Args:
        private_path: where the private key goes (refused if it exists).
        public_path: where the public key goes (refused if it exists).

    Returns:
        The raw public key.

    Raises:
        AuditError: cryptography is not installed, or a file exists.
        OSError: a file cannot be written.
    """
    ed25519 = _crypto()
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    for path in (private_path, public_path):
        if Path(path).exists():
            raise AuditError(f"{path} exists: not overwriting a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public = key.public_key()
    Path(public_path).write_bytes(public.public_bytes(Encoding.PEM,
                                                      PublicFormat.SubjectPublicKeyInfo))
    raw: bytes = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return raw


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """Load an Ed25519 private key from a PEM file (``audit keygen`` writes one).

    Args:
        path: the file.

    Returns:
        The key.

    Raises:
        AuditError: cryptography is missing, or the file holds no Ed25519 private key.
        OSError: the file cannot be read.
    """
    ed25519 = _crypto()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise AuditError(f"{path} holds no unencrypted PEM private key: {error}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise AuditError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """Load an Ed25519 public key from a PEM file, or a file of its 64 hex digits.

    Args:
        path: the file.

    Returns:
        The key.

    Raises:
        AuditError: cryptography is missing, or the file holds no Ed25519 public key.
        OSError: the file cannot be read.
    """
    ed25519 = _crypto()
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = Path(path).read_bytes()
    try:
        if data.lstrip().startswith(b"-----"):
            key = load_pem_public_key(data)
        else:
            key = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.decode().strip()))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise AuditError(f"{path} holds no Ed25519 public key: {error}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise AuditError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key
