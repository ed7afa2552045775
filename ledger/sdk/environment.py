"""``Environment`` and ``RunConfiguration``: what a submitted script runs with, as the seed SDK
shapes them, kept in the ledger.

An environment's definition (Python section, Docker section, environment variables) is recorded,
not built: conda and Docker definitions are kept so that a run says exactly what it asked for, but
runledger creates no conda environment and starts no container. A script runs in the interpreter
of the submitting process, or in ``python.interpreter_path`` when
``python.user_managed_dependencies`` is set (as the seed runs a user-managed environment).

``env.register(ws)`` records the definition as a new immutable version of the environment's name
(``"1"``, ``"2"``...; an unchanged definition keeps its version); ``Experiment.submit()`` registers
the run's environment the same way and records its name and version on the run
(``get_details()["runDefinition"]["environment"]``, ``run.get_environment()``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.domain.errors import EnvironmentNotFoundError, ValidationError
from ledger.domain.values import check_name, current_actor

if TYPE_CHECKING:
    from ledger.sdk.workspace import Workspace

__all__ = [
    "DEFAULT_ENVIRONMENT_NAME",
    "CondaDependencies",
    "DockerConfiguration",
    "DockerSection",
    "Environment",
    "PythonSection",
    "RunConfiguration",
]

DEFAULT_ENVIRONMENT_NAME = "runledger-default"  # RunConfiguration()'s environment
DEFAULT_INTERPRETER = "python"  # the seed's default: "the environment's python"


# ---------------------------------------------------------------------------------- conda
def _parse_conda_yaml(text: str, source: str) -> dict[str, Any]:
    """Read a conda environment file (``name``, ``channels``, ``dependencies`` with a nested
    ``pip`` list): the subset of YAML conda specifications use.

    Raises:
        ValidationError: a line this reader does not understand.
    """
    spec: dict[str, Any] = {}
    key: str | None = None
    in_pip = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0 and not stripped.startswith("-"):
            name, _, value = stripped.partition(":")
            key, in_pip = name.strip(), False
            value = value.strip().strip("'\"")
            spec[key] = value if value else []
            continue
        item = stripped[1:].strip().strip("'\"") if stripped.startswith("-") else None
        if key is None or item is None or not isinstance(spec.get(key), list):
            raise ValidationError(f"Conda specification {source}: line {number} is not "
                                  f"understood: {raw!r}")
        if key == "dependencies" and item.rstrip(":").strip() == "pip" and item.endswith(":"):
            spec[key].append({"pip": []})
            in_pip = True
            continue
        if in_pip and indent > 2 and isinstance(spec[key][-1], dict):
            spec[key][-1]["pip"].append(item)
        else:
            in_pip = False
            spec[key].append(item)
    return spec


class CondaDependencies:
    """A conda specification: name, channels, conda packages and pip packages.

    Args:
        conda_dependencies_file_path: a conda environment YAML file to read.

    Raises:
        ValidationError: the file cannot be read or is not understood.
    """

    def __init__(self, conda_dependencies_file_path: str | os.PathLike[str] | None = None,
                 _underlying_structure: dict[str, Any] | None = None) -> None:
        if _underlying_structure is not None:
            spec = copy.deepcopy(_underlying_structure)
        elif conda_dependencies_file_path is not None:
            path = Path(conda_dependencies_file_path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as error:
                raise ValidationError(f"Cannot read conda specification {str(path)!r}: "
                                      f"{error}") from error
            spec = _parse_conda_yaml(text, repr(str(path)))
        else:
            spec = {"name": "project_environment", "dependencies": [], "channels": []}
        spec.setdefault("dependencies", [])
        self._spec = spec

    @staticmethod
    def create(pip_packages: Iterable[str] | None = None,
               conda_packages: Iterable[str] | None = None, python_version: str | None = None,
               pin_sdk_version: bool = True, **kwargs: Any) -> CondaDependencies:
        """Build a specification from package lists (``python=<version>`` first when given)."""
        deps = CondaDependencies()
        if python_version:
            deps.add_conda_package(f"python={python_version}")
        for package in conda_packages or []:
            deps.add_conda_package(package)
        for package in pip_packages or []:
            deps.add_pip_package(package)
        return deps

    def _pip_list(self) -> list[str]:
        for item in self._spec["dependencies"]:
            if isinstance(item, dict) and "pip" in item:
                pip: list[str] = item["pip"]
                return pip
        entry: dict[str, list[str]] = {"pip": []}
        self._spec["dependencies"].append(entry)
        return entry["pip"]

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda package (once)."""
        if conda_package not in self._spec["dependencies"]:
            self._spec["dependencies"].insert(
                sum(1 for d in self._spec["dependencies"] if isinstance(d, str)), conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip package (once)."""
        pip = self._pip_list()
        if pip_package not in pip:
            pip.append(pip_package)

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (once)."""
        channels = self._spec.setdefault("channels", [])
        if channel not in channels:
            channels.append(channel)

    @property
    def conda_packages(self) -> Iterator[str]:
        """The conda packages."""
        return iter([d for d in self._spec["dependencies"] if isinstance(d, str)])

    @property
    def pip_packages(self) -> Iterator[str]:
        """The pip packages."""
        for item in self._spec["dependencies"]:
            if isinstance(item, dict) and "pip" in item:
                return iter(list(item["pip"]))
        return iter([])

    def serialize_to_string(self) -> str:
        """Return the specification as conda environment YAML."""
        lines = []
        if self._spec.get("name"):
            lines.append(f"name: {self._spec['name']}")
        for key in ("channels", "dependencies"):
            items = self._spec.get(key) or []
            lines.append(f"{key}:")
            for item in items:
                if isinstance(item, dict):
                    lines.append("- pip:")
                    lines.extend(f"  - {p}" for p in item.get("pip", []))
                else:
                    lines.append(f"- {item}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the specification as YAML to ``path``; return the path."""
        Path(path).write_text(self.serialize_to_string(), encoding="utf-8")
        return os.fspath(path)

    def _as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and other._spec == self._spec

    def __repr__(self) -> str:
        return f"CondaDependencies({self._spec!r})"


# ---------------------------------------------------------------------------------- sections
class PythonSection:
    """The Python section of an environment.

    Attributes:
        user_managed_dependencies: the interpreter is set up by the user: the script runs in
            ``interpreter_path``.
        interpreter_path: the interpreter to run the script with (``"python"``: the submitting
            process's own interpreter).
        conda_dependencies: the conda specification (recorded, not built).
        conda_dependencies_file: a conda file name (recorded).
        base_conda_environment: recorded.
    """

    def __init__(self) -> None:
        self.user_managed_dependencies: bool = False
        self.interpreter_path: str = DEFAULT_INTERPRETER
        self.conda_dependencies: CondaDependencies = CondaDependencies()
        self.conda_dependencies_file: str | None = None
        self.base_conda_environment: str | None = None

    def _as_dict(self) -> dict[str, Any]:
        return {
            "userManagedDependencies": bool(self.user_managed_dependencies),
            "interpreterPath": str(self.interpreter_path),
            "condaDependenciesFile": self.conda_dependencies_file,
            "baseCondaEnvironment": self.base_conda_environment,
            "condaDependencies": (self.conda_dependencies._as_dict()
                                  if self.conda_dependencies is not None else None),
        }

    def _load(self, data: dict[str, Any]) -> None:
        self.user_managed_dependencies = bool(data.get("userManagedDependencies"))
        self.interpreter_path = str(data.get("interpreterPath") or DEFAULT_INTERPRETER)
        self.conda_dependencies_file = data.get("condaDependenciesFile")
        self.base_conda_environment = data.get("baseCondaEnvironment")
        conda = data.get("condaDependencies")
        self.conda_dependencies = CondaDependencies(_underlying_structure=conda or None)


class DockerSection:
    """The Docker section of an environment: recorded, never built or started.

    Attributes:
        enabled, base_image, base_dockerfile, base_image_registry, shm_size, shared_volumes,
        arguments: as the seed SDK names them.
    """

    def __init__(self) -> None:
        self.enabled: bool = False
        self.base_image: str | None = None
        self.base_dockerfile: str | None = None
        self.base_image_registry: dict[str, Any] | None = None
        self.shm_size: str | None = None
        self.shared_volumes: bool = True
        self.arguments: list[str] = []

    def _as_dict(self) -> dict[str, Any]:
        return {"enabled": bool(self.enabled), "baseImage": self.base_image,
                "baseDockerfile": self.base_dockerfile,
                "baseImageRegistry": self.base_image_registry, "shmSize": self.shm_size,
                "sharedVolumes": bool(self.shared_volumes),
                "arguments": [str(a) for a in self.arguments]}

    def _load(self, data: dict[str, Any]) -> None:
        self.enabled = bool(data.get("enabled"))
        self.base_image = data.get("baseImage")
        self.base_dockerfile = data.get("baseDockerfile")
        self.base_image_registry = data.get("baseImageRegistry")
        self.shm_size = data.get("shmSize")
        self.shared_volumes = bool(data.get("sharedVolumes", True))
        self.arguments = list(data.get("arguments") or [])


# ---------------------------------------------------------------------------------- environment
class Environment:
    """A named, versioned definition of what a script runs with (see the module docstring).

    Args:
        name: the environment's name.

    Raises:
        ValidationError: the name is not a valid name.
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name: str = check_name(name, "environment name")
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self.inferencing_stack_version: str | None = None

    def __repr__(self) -> str:
        return f"Environment(Name: {self.name},\nVersion: {self.version})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Environment) and other.name == self.name
                and other.version == self.version and other._definition() == self._definition())

    __hash__ = None  # type: ignore[assignment]  # mutable, as the seed's

    # ------------------------------------------------------------------ definitions
    def _definition(self) -> dict[str, Any]:
        """The recorded definition (everything but name and version), JSON-normalised."""
        data = {
            "python": self.python._as_dict(),
            "docker": self.docker._as_dict(),
            "environmentVariables": {str(k): str(v)
                                     for k, v in self.environment_variables.items()},
            "inferencingStackVersion": self.inferencing_stack_version,
        }
        normalised: dict[str, Any] = json.loads(json.dumps(data))
        return normalised

    @classmethod
    def _from_definition(cls, name: str, version: str | None,
                         definition: dict[str, Any]) -> Environment:
        environment = cls(name)
        environment.version = version
        environment.python._load(definition.get("python") or {})
        environment.docker._load(definition.get("docker") or {})
        environment.environment_variables = dict(definition.get("environmentVariables") or {})
        environment.inferencing_stack_version = definition.get("inferencingStackVersion")
        return environment

    def get_details(self) -> dict[str, Any]:
        """Return the environment as the seed serialises it (``name``, ``version``,
        ``python``, ``docker``, ``environmentVariables``...)."""
        return {"name": self.name, "version": self.version, **self._definition()}

    def clone(self, new_name: str) -> Environment:
        """Return a copy under another name (not registered)."""
        return Environment._from_definition(new_name, None, self._definition())

    # ------------------------------------------------------------------ constructors
    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        """An environment whose Python section is the conda file's specification.

        Raises:
            ValidationError: the file cannot be read or is not understood.
        """
        environment = Environment(name)
        environment.python.conda_dependencies = CondaDependencies(file_path)
        return environment

    @staticmethod
    def from_pip_requirements(name: str, file_path: str | os.PathLike[str],
                              pip_version: str | None = None) -> Environment:
        """An environment whose pip packages are a requirements file's lines.

        Raises:
            ValidationError: the file cannot be read.
        """
        try:
            text = Path(file_path).read_text(encoding="utf-8")
        except OSError as error:
            raise ValidationError(f"Cannot read pip requirements {os.fspath(file_path)!r}: "
                                  f"{error}") from error
        packages = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
        packages = [p for p in packages if p and not p.startswith("#")]
        if pip_version:
            packages.insert(0, f"pip=={pip_version}")
        environment = Environment(name)
        environment.python.conda_dependencies = CondaDependencies.create(pip_packages=packages)
        return environment

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment:
        """An environment recording a local conda environment's export (``conda env export``),
        run with that environment's own interpreter (user-managed).

        Raises:
            ValidationError: ``conda`` is not installed, or cannot export the environment.
        """
        conda = shutil.which("conda")
        if conda is None:
            raise ValidationError(
                f"Environment {name!r}: cannot read conda environment "
                f"{conda_environment_name!r}: conda is not installed (not on PATH)")
        try:
            exported = subprocess.run(
                [conda, "env", "export", "-n", conda_environment_name], capture_output=True,
                text=True, check=True, timeout=120).stdout
            prefix = subprocess.run(
                [conda, "run", "-n", conda_environment_name, "python", "-c",
                 "import sys; print(sys.executable)"], capture_output=True, text=True,
                check=True, timeout=120).stdout.strip()
        except (OSError, subprocess.SubprocessError) as error:
            raise ValidationError(
                f"Environment {name!r}: conda cannot export environment "
                f"{conda_environment_name!r}: {error}") from error
        environment = Environment(name)
        environment.python.conda_dependencies = CondaDependencies(
            _underlying_structure=_parse_conda_yaml(exported, repr(conda_environment_name)))
        environment.python.user_managed_dependencies = True
        environment.python.interpreter_path = prefix or DEFAULT_INTERPRETER
        return environment

    @staticmethod
    def from_docker_image(name: str, image: str, container_registry: Any = None,
                          conda_specification: str | os.PathLike[str] | None = None,
                          pip_requirements: str | os.PathLike[str] | None = None) -> Environment:
        """An environment recording a Docker image (recorded, not pulled).

        Raises:
            ValidationError: a specification file cannot be read.
        """
        if conda_specification is not None:
            environment = Environment.from_conda_specification(name, conda_specification)
        elif pip_requirements is not None:
            environment = Environment.from_pip_requirements(name, pip_requirements)
        else:
            environment = Environment(name)
        environment.docker.base_image = image
        return environment

    # ------------------------------------------------------------------ the ledger
    def register(self, workspace: Workspace) -> Environment:
        """Record the definition in the workspace's ledger as a version of this name.

        An unchanged definition keeps the latest version; any change is a new version. Sets and
        returns ``self`` with its ``version``.

        Raises:
            StoreError: the store failed.
        """
        self.version = workspace._session.app.register_environment(
            self.name, self._definition(), current_actor(workspace._settings.user))
        return self

    @staticmethod
    def get(workspace: Workspace, name: str, version: str | int | None = None,
            label: str | None = None) -> Environment:
        """Return a registered environment: the latest version, or the given one.

        Raises:
            EnvironmentNotFoundError: no such environment or version.
        """
        try:
            aggregate = workspace._session.app.get_environment(name)
        except LookupError:
            raise EnvironmentNotFoundError(name) from None
        wanted = str(version) if version is not None else aggregate.latest_version
        if wanted is None or wanted not in aggregate.versions:
            raise EnvironmentNotFoundError(name, wanted)
        return Environment._from_definition(name, wanted, aggregate.versions[wanted])

    @staticmethod
    def list(workspace: Workspace) -> dict[str, Environment]:
        """Return every registered environment's latest version, by name.

        Raises:
            StoreError: the store failed.
        """
        return {name: Environment.get(workspace, name)
                for name in workspace._session.app.environment_names()}


def default_environment() -> Environment:
    """The environment of a ``RunConfiguration`` given none: this interpreter."""
    return Environment(DEFAULT_ENVIRONMENT_NAME)


# ---------------------------------------------------------------------------------- run config
class DockerConfiguration:
    """The seed's ``DockerConfiguration(use_docker=...)``: recorded, never started."""

    def __init__(self, use_docker: bool = False, shm_size: str | None = None,
                 shared_volumes: bool = True, arguments: list[str] | None = None) -> None:
        self.use_docker = use_docker
        self.shm_size = shm_size
        self.shared_volumes = shared_volumes
        self.arguments = list(arguments or [])


class RunConfiguration:
    """How a script runs: its script, arguments, compute target and environment (the seed's
    ``RunConfiguration``; ``ScriptRunConfig.run_config`` is always one).

    Args:
        script: the script (``ScriptRunConfig`` sets it).
        arguments: its arguments.
        framework: recorded (``"Python"``).
        communicator: recorded (``"None"``).
        conda_dependencies: the environment's conda specification.
        command: a command line instead of a script.

    Attributes:
        target: the compute target's name (``"local"``).
        environment: an ``Environment`` (``runledger-default``: this interpreter).
        max_run_duration_seconds, node_count, history, docker: recorded.
    """

    def __init__(self, script: str | None = None, arguments: list[Any] | None = None,
                 framework: str | None = None, communicator: str | None = None,
                 conda_dependencies: CondaDependencies | None = None,
                 _history_enabled: bool | None = None, _path: str | None = None,
                 _name: str | None = None, command: Any = None) -> None:
        self.script = script
        self.arguments: list[Any] = list(arguments or [])
        self.command = command
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.target = "local"
        self.environment: Environment = default_environment()
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.max_run_duration_seconds: float | None = None
        self.node_count = 1
        self.history = _history_enabled if _history_enabled is not None else True
        self.docker = DockerConfiguration()
        self._name = _name

    @property
    def environment_variables(self) -> dict[str, str]:
        """The environment's variables (set in the script's process)."""
        return self.environment.environment_variables

    def __repr__(self) -> str:
        return (f"RunConfiguration(script={self.script!r}, target={self.target!r}, "
                f"environment={self.environment.name!r})")
