"""Compute targets: every target runs scripts on this machine, so any name is one.

``ws.compute_targets`` is a read-only mapping in which every target name is present (``"cpu-cluster"
in ws.compute_targets`` is true for any name), so the seed's ``if name in ws.compute_targets:
target = ws.compute_targets[name]`` takes its first branch; ``ws.compute_targets[name]`` is a
``ComputeTarget`` whose ``name`` is recorded as the run's target. Iterating it gives the names
looked up through it so far, and ``local``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ledger.domain.values import check_name

LOCAL_TARGET = "local"


@attrs.frozen
class ComputeTarget:
    """A named compute target (a script submitted to it runs on this machine).

    Attributes:
        name: the target's name, recorded as the run's target.
        type: always ``"local"``: nothing is provisioned.
    """

    name: str
    type: str = LOCAL_TARGET

    def wait_for_completion(self, show_output: bool = False, **kwargs: Any) -> None:
        """Return at once: there is nothing to provision."""


class ComputeTargets(Mapping[str, ComputeTarget]):
    """``Workspace.compute_targets`` (see the module docstring)."""

    def __init__(self) -> None:
        self._seen: dict[str, ComputeTarget] = {LOCAL_TARGET: ComputeTarget(LOCAL_TARGET)}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> ComputeTarget:
        """Return the target of this name.

        Raises:
            ValidationError: the name is not a non-empty string.
        """
        check_name(name, "compute target name")
        with self._lock:
            return self._seen.setdefault(name, ComputeTarget(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(name.strip())

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._seen))

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def __repr__(self) -> str:
        return f"ComputeTargets({sorted(self._seen)!r}, any name is present)"
