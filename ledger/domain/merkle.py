"""Merkle trees of RFC 9162 (Certificate Transparency v2), section 2.1: pure functions, no I/O.

A tree of ``n`` leaves in order: the empty tree hashes to ``SHA-256("")``, one leaf to
``SHA-256(0x00 || leaf)``, and ``n > 1`` leaves split at ``k``, the largest power of two smaller
than ``n``: ``SHA-256(0x01 || MTH(first k) || MTH(the rest))``.

Proofs are lists of 32-byte hashes exactly as RFC 9162 §2.1.3 (inclusion: the audit path, bottom
up) and §2.1.4 (consistency) define them, so any RFC 6962/9162 verifier checks them. The
verifiers here (:func:`verify_inclusion`, :func:`verify_consistency`) follow the RFC's algorithms
step by step and refuse anything malformed (a size out of range, a node missing or extra, a node
that is not 32 bytes) with :class:`ProofError`.

Proof *generation* reads the tree through a :data:`NodeSource`: ``source(level, index)`` returns
the hash of the perfect subtree of ``2**level`` leaves starting at leaf ``index * 2**level``
(level 0: the leaf hashes). :func:`leaf_source` builds one over a list of leaf hashes (tests, the
offline verifier); a store can serve its stored nodes (``projections.sealing``). Every hash of a
range that is not a perfect subtree is composed from perfect ones, so a stored tree needs only
its perfect subtrees, which an append-only log never changes.

Why not ``pymerkle`` (7.0.0, which implements RFC 9162): its trees live in its own storage (in
memory, or its own SQLite file and connection with a copy of every entry; no PostgreSQL), so it
cannot write inside the projector's transaction that makes sealing exactly-once; its proofs are
its own format (1-based indices, a "rule" bit list, the leaf hash as the path's first element),
not the bare RFC 9162 audit path other verifiers take; it needs Python >= 3.11 (runledger supports
3.10) and pins ``cachetools`` to one exact version; its README still asks for a security audit.
The part runledger needs -- hashing, a compact range, generating and verifying the two kinds of
proof from stored subtrees -- is this module, checked against the RFC 6962 vectors and
transparency-dev's probes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from ledger.domain.errors import AuditError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``source(level, index)``: the hash of the perfect subtree of ``2**level`` leaves starting at
#: leaf ``index << level``.
NodeSource = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


class ProofError(AuditError, ValueError):
    """A Merkle proof is malformed, or does not prove what it claims."""


def leaf_hash(leaf: bytes) -> bytes:
    """Return the RFC 9162 hash of a leaf: ``SHA-256(0x00 || leaf)``.

    Args:
        leaf: the leaf's bytes.

    Returns:
        32 bytes.
    """
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``.

    Args:
        left: the left child's hash.
        right: the right child's hash.

    Returns:
        32 bytes.
    """
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """Return the largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the root hash (MTH) of a tree over the given leaf hashes.

    Args:
        leaf_hashes: the leaves' hashes (:func:`leaf_hash`), in order.

    Returns:
        The root; ``SHA-256("")`` for no leaves.
    """
    compact = CompactRange()
    for value in leaf_hashes:
        compact.append(value)
    return compact.root()


def leaf_source(leaf_hashes: Sequence[bytes]) -> NodeSource:
    """Return a :data:`NodeSource` over leaf hashes held in memory (subtrees computed on demand).

    Args:
        leaf_hashes: the leaves' hashes, in order.

    Returns:
        The source (it raises ``IndexError`` for a subtree beyond the leaves).
    """
    cache: dict[tuple[int, int], bytes] = {}

    def source(level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hashes[index]
        key = (level, index)
        found = cache.get(key)
        if found is None:
            if (index + 1) << level > len(leaf_hashes):
                raise IndexError(f"no perfect subtree at level {level}, index {index}")
            found = cache[key] = node_hash(source(level - 1, 2 * index),
                                           source(level - 1, 2 * index + 1))
        return found

    return source


def range_hash(start: int, end: int, source: NodeSource) -> bytes:
    """Return MTH of the leaves ``[start, end)``, split as RFC 9162 splits a tree of that size.

    Args:
        start: the first leaf.
        end: one past the last leaf (``end > start``).
        source: the tree's perfect subtrees.

    Returns:
        The hash.
    """
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return source(level, start >> level)
    k = split_point(size)
    return node_hash(range_hash(start, start + k, source), range_hash(start + k, end, source))


def perfect_subtrees(size: int) -> list[tuple[int, int]]:
    """Return the ``(level, index)`` of the perfect subtrees a tree of ``size`` leaves is made of,
    left to right (one per bit set in ``size``, largest first).

    Args:
        size: the number of leaves.

    Returns:
        The subtrees (empty for 0).
    """
    subtrees = []
    offset = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            subtrees.append((level, offset >> level))
            offset += 1 << level
    return subtrees


class CompactRange:
    """The right edge of a growing tree: enough to append leaves and compute the root.

    It holds one hash per perfect subtree of :func:`perfect_subtrees` (at most 64), so appending
    costs one leaf plus, on average, one node hash.

    Args:
        size: the number of leaves already in the tree.
        hashes: the hashes of its perfect subtrees, left to right.

    Raises:
        ValueError: ``hashes`` does not match ``size``.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        if len(self.hashes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} perfect subtrees "
                             f"on its right edge, not {len(self.hashes)}")

    def append(self, value: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash.

        Args:
            value: the leaf's hash.

        Returns:
            The perfect subtrees of two or more leaves this leaf completes, as
            ``(level, index, hash)``, smallest first.
        """
        index = self.size
        hashes = self.hashes
        hashes.append(value)
        self.size = index + 1
        completed = []
        level = 0
        while index >> level & 1:
            right = hashes.pop()
            merged = node_hash(hashes.pop(), right)
            hashes.append(merged)
            level += 1
            completed.append((level, index >> level, merged))
        return completed

    def extend(self, values: Sequence[bytes], min_level: int = 1) -> list[tuple[int, int, bytes]]:
        """Append many leaf hashes at once: the same tree as :meth:`append` one by one, built a
        level at a time (one list comprehension of node hashes per level instead of a Python
        loop per leaf: a sealed page costs about half as much).

        Args:
            values: the leaves' hashes, in order.
            min_level: report only the completed subtrees from this level up.

        Returns:
            The perfect subtrees of two or more leaves (and of at least ``2**min_level``) the
            leaves complete, as ``(level, index, hash)``.
        """
        hashes = self.hashes
        start = self.size
        row = list(values)
        self.size = start + len(row)
        sha = _sha256
        completed: list[tuple[int, int, bytes]] = []
        # The row's last hash when it has no right sibling yet: the new right edge, by level.
        edge: list[bytes] = []
        level = 0
        while row:
            if start & 1:
                # The row starts with a right child: its left sibling is the edge's smallest
                # subtree (every smaller one was taken at the levels below).
                row = [hashes.pop(), *row]
                start -= 1
            if len(row) & 1:
                edge.append(row.pop())
            pairs = iter(row)
            row = [sha(b"\x01" + left + right).digest()
                   for left, right in zip(pairs, pairs, strict=False)]
            level += 1
            start >>= 1
            if row and level >= min_level:
                completed += zip([level] * len(row), range(start, start + len(row)), row,
                                 strict=True)
        hashes += reversed(edge)
        return completed

    def root(self) -> bytes:
        """Return the root hash of the tree so far (``SHA-256("")`` when empty)."""
        hashes = self.hashes
        if not hashes:
            return EMPTY_ROOT
        value = hashes[-1]
        for left in reversed(hashes[:-1]):
            value = node_hash(left, value)
        return value


# ---------------------------------------------------------------------- generation
def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """Return the audit path of leaf ``index`` in the tree of the first ``size`` leaves
    (RFC 9162 §2.1.3.1, ``PATH(m, D[n])``), bottom up.

    Args:
        index: the leaf, from 0.
        size: the tree size.
        source: the tree's perfect subtrees (at least ``size`` leaves).

    Returns:
        The proof's hashes.

    Raises:
        ProofError: ``index`` is not in ``[0, size)``.
    """
    if not 0 <= index < size:
        raise ProofError(f"Leaf index {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(range_hash(start + k, end, source))
            end = start + k
        else:
            path.append(range_hash(start, start + k, source))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, source: NodeSource) -> list[bytes]:
    """Return the proof that the tree of ``new_size`` leaves extends the tree of ``old_size``
    (RFC 9162 §2.1.4.1, ``PROOF(m, D[n])``).

    Args:
        old_size: the earlier tree size (at least 1).
        new_size: the later tree size (at least ``old_size``).
        source: the tree's perfect subtrees (at least ``new_size`` leaves).

    Returns:
        The proof's hashes (empty when the sizes are equal).

    Raises:
        ProofError: the sizes are out of range.
    """
    if not 0 < old_size <= new_size:
        raise ProofError(f"No consistency proof from a tree of {old_size} leaves to one of "
                         f"{new_size}: the old size must be in [1, new size]")
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    # SUBPROOF(m, D[start:end], complete), unrolled: each step appends the sibling of the
    # subtree it descends into; the hashes come out top down, the RFC lists them bottom up.
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(range_hash(start + k, end, source))
            end = start + k
        else:
            proof.append(range_hash(start, start + k, source))
            start += k
            m -= k
            complete = False
    if not complete:
        proof.append(range_hash(start, end, source))
    proof.reverse()
    return proof


def needed_nodes(generate: Callable[[NodeSource], object]) -> set[tuple[int, int]]:
    """Return the ``(level, index)`` of the perfect subtrees a proof generation reads.

    A store reads them all in one query, then generates the proof from what it read.

    Args:
        generate: calls :func:`inclusion_proof` or :func:`consistency_proof` with the given
            source.

    Returns:
        The subtrees read.
    """
    wanted: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return EMPTY_ROOT

    generate(record)
    return wanted


# ---------------------------------------------------------------------- verification
def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash: {value!r}")
    return value


def _check_size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise ProofError(f"{what} is not an integer in [0, 2**64): {value!r}")
    return value


def root_from_inclusion_proof(index: int, size: int, leaf: bytes,
                              proof: Sequence[bytes]) -> bytes:
    """Return the root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1-5).

    Args:
        index: the leaf's index, from 0.
        size: the tree size.
        leaf: the leaf's hash.
        proof: the audit path.

    Returns:
        The root the proof implies.

    Raises:
        ProofError: the proof is malformed (index out of range, nodes missing or extra, a node
            of the wrong length).
    """
    _check_size(index, "The leaf index")
    _check_size(size, "The tree size")
    _check_hash(leaf, "The leaf hash")
    if index >= size:
        raise ProofError(f"Leaf index {index} is not in a tree of {size} leaves")
    fn, sn = index, size - 1
    value = leaf
    for position, sibling in enumerate(proof):
        _check_hash(sibling, f"Node {position} of the proof")
        if sn == 0:
            raise ProofError(f"The proof has {len(proof)} nodes: too many for leaf {index} "
                             f"of a tree of {size}")
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            value = node_hash(value, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"The proof has {len(proof)} nodes: too few for leaf {index} of a "
                         f"tree of {size}")
    return value


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     expected_root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with this root.

    Args:
        index: the leaf's index, from 0.
        size: the tree size.
        leaf: the leaf's hash (:func:`leaf_hash` of its bytes).
        proof: the audit path (RFC 9162 §2.1.3).
        expected_root: the tree's root, from a trusted digest.

    Raises:
        ProofError: the proof is malformed or leads to another root.
    """
    _check_hash(expected_root, "The root")
    if root_from_inclusion_proof(index, size, leaf, proof) != expected_root:
        raise ProofError(f"The inclusion proof of leaf {index} does not lead to the root of the "
                         f"tree of {size} leaves")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` leaves with ``new_root`` extends the tree of
    ``old_size`` leaves with ``old_root`` (RFC 9162 §2.1.4.2): its first leaves are the same.

    Equal sizes need an empty proof and equal roots. A proof from the empty tree proves
    nothing and is refused.

    Args:
        old_size: the earlier tree size.
        new_size: the later tree size.
        old_root: the earlier root (trusted).
        new_root: the later root (trusted).
        proof: the consistency proof.

    Raises:
        ProofError: the proof is malformed or does not prove the extension.
    """
    _check_size(old_size, "The old tree size")
    _check_size(new_size, "The new tree size")
    _check_hash(old_root, "The old root")
    _check_hash(new_root, "The new root")
    for position, node in enumerate(proof):
        _check_hash(node, f"Node {position} of the proof")
    if old_size > new_size:
        raise ProofError(f"The old tree ({old_size} leaves) is larger than the new one "
                         f"({new_size})")
    if old_size == 0:
        raise ProofError("A consistency proof from the empty tree proves nothing")
    if old_size == new_size:
        if proof:
            raise ProofError("Trees of the same size need an empty consistency proof")
        if old_root != new_root:
            raise ProofError(f"Two trees of {old_size} leaves have different roots")
        return
    if not proof:
        raise ProofError("The consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: a power of two is its own first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError(f"The consistency proof has {len(proof)} nodes: too many for "
                             f"{old_size} -> {new_size}")
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"The consistency proof has {len(proof)} nodes: too few for "
                         f"{old_size} -> {new_size}")
    if first != old_root:
        raise ProofError(f"The consistency proof does not lead to the old root ({old_size} "
                         "leaves)")
    if second != new_root:
        raise ProofError(f"The consistency proof does not lead to the new root ({new_size} "
                         "leaves)")
