"""The Azure ML SDK v1 members real notebooks touch first (issue 9): workspace identity, the seed's
module paths, environments and run configurations, offline runs, start_logging's outputs folder,
run names, experiment tags and archiving, run definitions and metric histories.

Contract tests run on every backend through ``ws``/``exp`` (``store_url``); submitting a script
needs a store another process can open (``shared_store_url``), so those are not generated for
``memory``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

import ledger
from ledger import Experiment, Run, ScriptRunConfig, ValidationError, Workspace
from ledger.domain.environment import EnvironmentAggregate, environment_stream_id
from ledger.domain.errors import EnvironmentNotFoundError, ExperimentNotFoundError
from ledger.domain.experiment import ExperimentAggregate
from ledger.domain.ids import experiment_stream_id
from ledger.environment import Environment
from ledger.experiment import ViewType
from ledger.run import _OfflineRun, get_run
from ledger.runconfig import RunConfiguration
from ledger.sdk.compute import ComputeTarget

SEED_WORKSPACE_KEYS = (
    "id", "name", "location", "type", "workspaceid", "description", "friendlyName",
    "creationTime", "containerRegistry", "keyVault", "applicationInsights", "storageAccount",
    "hbiWorkspace", "discoveryUrl", "notebookInfo", "identityPrincipalId", "identityTenantId",
    "identityType", "sku", "tags", "imageBuildCompute", "allowPublicAccessWhenBehindVnet",
)


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def wait_ended(run: Run, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.get_status() in ("Completed", "Failed", "Canceled"):
            return run.get_details()
        time.sleep(0.05)
    raise AssertionError(f"run {run.id} still {run.get_status()} after {timeout}s")


# ---------------------------------------------------------------------------------- workspace
def test_workspace_identity_defaults_to_local(ws: Workspace) -> None:
    assert (ws.subscription_id, ws.resource_group, ws.location) == ("local", "local", "local")
    details = ws.get_details()
    assert set(SEED_WORKSPACE_KEYS) <= set(details)
    assert all(isinstance(value, str) for value in details.values())
    assert details["name"] == details["friendlyName"] == ws.name
    assert details["location"] == "local"
    assert details["type"] == "Microsoft.MachineLearningServices/workspaces"
    assert details["id"] == ("/subscriptions/local/resourceGroups/local/providers/"
                             f"Microsoft.MachineLearningServices/workspaces/{ws.name}")
    assert details["creationTime"] == ""  # nothing recorded yet
    Experiment(ws, "first").start_logging().complete()
    created = ws.get_details()["creationTime"]
    assert created.endswith("Z")
    assert details["workspaceid"] == ws.get_details()["workspaceid"]  # stable


def test_workspace_create_and_get_keep_the_identity(store_url: str) -> None:
    created = Workspace.create("team-ws", subscription_id="sub-1", resource_group="rg-1",
                               location="westeurope", create_resource_group=True,
                               sku="basic", exist_ok=False, store=store_url)
    assert created.name == "team-ws"
    assert (created.subscription_id, created.resource_group, created.location) == (
        "sub-1", "rg-1", "westeurope")
    assert created.get_details()["id"].startswith("/subscriptions/sub-1/resourceGroups/rg-1/")
    got = Workspace.get("team-ws", subscription_id="sub-1", resource_group="rg-1",
                        store=store_url)
    assert (got.name, got.subscription_id, got.location) == ("team-ws", "sub-1", "local")


def test_from_config_reads_an_azure_ml_config_json() -> None:
    write_json(Path("config.json"), {"subscription_id": "s", "resource_group": "g",
                                     "workspace_name": "nb-ws"})
    ws = Workspace.from_config()
    assert (ws.name, ws.subscription_id, ws.resource_group) == ("nb-ws", "s", "g")
    assert ws.config_file == (Path.cwd() / "config.json")
    assert ws.settings.store.path == (Path.cwd() / ".runledger" / "ledger.db").resolve()


def test_from_config_finds_dot_azureml_config_in_a_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    project = Path.cwd()
    write_json(project / ".azureml" / "config.json",
               {"subscription_id": "s2", "resource_group": "g2", "workspace_name": "attached",
                "location": "eastus"})
    deep = project / "src" / "train"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    ws = Workspace.from_config()
    assert (ws.name, ws.location) == ("attached", "eastus")
    # the store sits beside .azureml/, as beside .runledger/
    assert ws.settings.store.path == (project / ".runledger" / "ledger.db").resolve()


def test_a_bad_azure_config_value_is_a_clear_error(tmp_path: Path) -> None:
    from ledger import StoreConfigError

    file = write_json(tmp_path / "cfg" / "config.json",
                      {"subscription_id": 42, "workspace_name": "w"})
    with pytest.raises(StoreConfigError, match="subscription_id must be a string"):
        Workspace.from_config(path=file)
    named = write_json(tmp_path / "other" / "aml.json", {"workspace_name": "by-file-name"})
    assert Workspace.from_config(path=named.parent, _file_name="aml.json").name == "by-file-name"


def test_an_unrelated_config_json_is_passed_over() -> None:
    write_json(Path("config.json"), {"theme": "dark"})
    ws = Workspace.from_config()
    assert ws.config_file is None
    assert ws.name == "default"


def test_write_config_round_trips(tmp_path: Path) -> None:
    ws = Workspace.create("saved", subscription_id="s3", resource_group="g3",
                          store=f"sqlite:///{tmp_path / 'saved.db'}")
    file = ws.write_config()
    assert file == Path(".azureml") / "config.json"
    again = Workspace.from_config()
    assert (again.name, again.subscription_id, again.resource_group) == ("saved", "s3", "g3")
    assert again.store_url == ws.store_url


def test_compute_targets_have_every_name(ws: Workspace) -> None:
    targets = ws.compute_targets
    assert isinstance(targets, Mapping)
    assert "cpu-cluster" in targets and "anything-at-all" in targets
    assert "" not in targets and 5 not in targets
    target = targets["cpu-cluster"]
    assert isinstance(target, ComputeTarget)
    assert target.name == "cpu-cluster"
    assert "cpu-cluster" in list(targets)
    with pytest.raises(ValidationError):
        targets[""]
    config = ScriptRunConfig(".", "train.py", compute_target=targets["gpu-cluster"])
    assert config.target == config.run_config.target == "gpu-cluster"


# ---------------------------------------------------------------------------------- module paths
def test_the_seed_module_paths_give_the_same_classes() -> None:
    import ledger.experiment
    import ledger.run
    import ledger.runconfig
    import ledger.script_run_config
    import ledger.workspace

    assert ledger.workspace.Workspace is ledger.Workspace
    assert ledger.experiment.Experiment is ledger.Experiment
    assert ledger.run.Run is ledger.Run
    assert ledger.script_run_config.ScriptRunConfig is ledger.ScriptRunConfig
    assert ledger.runconfig.RunConfiguration is RunConfiguration
    assert ledger.Environment is Environment  # from azureml.core import Environment
    assert ledger.RunConfiguration is RunConfiguration and ledger.ViewType is ViewType
    assert ledger.ComputeTarget is ComputeTarget
    assert issubclass(_OfflineRun, Run)


def test_get_run_loads_a_run(exp: Experiment) -> None:
    run = exp.start_logging()
    run.complete()
    assert get_run(exp, run.id) == run
    assert get_run(exp, run.id).get_status() == "Completed"
    assert exp.workspace.get_run(run.id) == run


# ---------------------------------------------------------------------------------- runs
def test_start_logging_creates_the_outputs_folder(exp: Experiment) -> None:
    run = exp.start_logging()
    assert Path("outputs").is_dir()
    Path("outputs/model.pkl").write_bytes(b"model")  # what notebooks do next
    run.complete()
    exp.start_logging(outputs="elsewhere").complete()
    assert Path("elsewhere").is_dir()


def test_run_names_follow_the_seed(exp: Experiment) -> None:
    parent = exp.start_logging()
    child = parent.child_run()
    grandchild = child.child_run()
    assert parent.name == f"run_{parent.id}"
    assert child.name == f"run_{parent.id}>run_{child.id}"
    assert grandchild.name == f"{child.name}>run_{grandchild.id}"
    assert parent.child_run(name="fold-1").name == "fold-1"
    assert Run(exp, grandchild.id).name == grandchild.name  # recorded, not recomputed


def test_deep_children_are_not_held_to_the_name_length(exp: Experiment) -> None:
    run = exp.start_logging()
    for _ in range(8):  # eight UUID-named levels: longer than a given name may be
        run = run.child_run()
    assert len(run.name) > 256


def test_metric_history_has_values_steps_and_times(exp: Experiment) -> None:
    run = exp.start_logging()
    run.log("loss", 0.5, step=1)
    run.log("loss", 0.25, step=2)
    run.log("loss", 0.125)
    run.log_row("row", a=1)
    history = run.get_metric_history("loss")
    assert [(h["value"], h["step"]) for h in history] == [(0.5, 1), (0.25, 2), (0.125, None)]
    assert all(h["time"].endswith("Z") for h in history)
    assert history[0]["time"] <= history[2]["time"]
    assert run.get_metric_history("row")[0]["value"] == {"a": 1}
    assert run.get_metric_history("never") == []
    assert run.get_metrics() == {"loss": [0.5, 0.25, 0.125], "row": {"a": 1}}


# ---------------------------------------------------------------------------------- experiments
@pytest.mark.parametrize("name", ["-leading-dash", "has space", "dot.ted", "a" * 257, "",
                                  "ünïcode", "_under"])
def test_experiment_names_are_validated_as_the_seed_does(ws: Workspace, name: str) -> None:
    before = ws.ledger.application.max_position()
    with pytest.raises(ValidationError, match="experiment name"):
        Experiment(ws, name)
    assert ws.ledger.application.max_position() == before


@pytest.mark.parametrize("name", ["a", "1st", "explore-runs", "My_Experiment-2", "a" * 256])
def test_valid_experiment_names(ws: Workspace, name: str) -> None:
    assert Experiment(ws, name).name == name


def test_experiment_tags_are_events_with_history(ws: Workspace) -> None:
    exp = Experiment(ws, "tagged")
    assert exp.tags == {}
    exp.tag("team", "vision")
    exp.tag("flag")
    exp.set_tags({"owner": "ada", "epochs": 3})
    assert exp.tags == {"team": "vision", "flag": None, "owner": "ada", "epochs": "3"}
    exp.remove_tags(["flag", "absent"])
    assert exp.tags == {"team": "vision", "owner": "ada", "epochs": "3"}
    with pytest.raises(ValidationError, match="tagged"):
        exp.set_tags(["not", "a", "dict"])  # type: ignore[arg-type]
    events = ws.ledger.application.stream_events(experiment_stream_id("tagged"))
    topics = [type(e).TOPIC for e in events]  # type: ignore[attr-defined]
    assert topics == [ExperimentAggregate.Created.TOPIC] + [
        ExperimentAggregate.TagsSet.TOPIC] * 3 + [ExperimentAggregate.TagsRemoved.TOPIC]
    assert all(e.actor["user"] for e in events)  # type: ignore[attr-defined]


def test_archive_reactivate_and_list_by_view_type_and_tags(ws: Workspace) -> None:
    active = Experiment(ws, "active")
    old = Experiment(ws, "old")
    active.tag("team", "vision")
    old.tag("team", "nlp")
    old.start_logging().complete()
    assert old.archived_time is None
    old.archive()
    archived_time = old.archived_time
    assert archived_time is not None and archived_time.endswith("Z")
    old.archive()  # archiving again changes nothing
    assert old.archived_time == archived_time

    def names(**kwargs: object) -> list[str]:
        return [e.name for e in Experiment.list(ws, **kwargs)]  # type: ignore[arg-type]

    assert names() == ["active"]
    assert names(view_type=ViewType.ARCHIVED_ONLY) == ["old"]
    assert names(view_type=ViewType.ALL) == ["active", "old"]
    assert names(view_type="All", tags="team") == ["active", "old"]
    assert names(view_type="All", tags={"team": "nlp"}) == ["old"]
    assert names(tags={"team": "nlp"}) == []
    assert names(experiment_name="old", view_type="All") == ["old"]
    assert list(ws.experiments) == ["active"]
    assert [r.get_status() for r in old.get_runs()] == ["Completed"]  # runs stay readable
    with pytest.raises(ValidationError, match="view_type"):
        Experiment.list(ws, view_type="Archived")
    with pytest.raises(ValidationError, match="not supported"):
        old.reactivate(new_name="renamed")
    old.reactivate()
    assert old.archived_time is None
    assert names() == ["active", "old"]
    # another workspace on the same store sees the same (the read model caught up)
    other = Workspace(store=ws.settings.store)
    assert [e.name for e in Experiment.list(other, view_type=ViewType.ALL, tags="team")] == [
        "active", "old"]


def test_experiment_commands_on_an_experiment_never_created(ws: Workspace) -> None:
    ghost = Experiment._existing(ws, "ghost", experiment_stream_id("ghost"))
    with pytest.raises(ExperimentNotFoundError):
        ghost.archive()


# ---------------------------------------------------------------------------------- environments
def test_environment_versions_are_immutable_events(ws: Workspace) -> None:
    env = Environment("train-env")
    env.python.conda_dependencies.add_pip_package("scikit-learn==1.4")
    assert env.register(ws).version == "1"
    assert Environment("train-env").version is None
    again = Environment.get(ws, "train-env")
    again.register(ws)
    assert again.version == "1"  # an unchanged definition keeps its version
    again.docker.enabled = True
    again.docker.base_image = "mcr.microsoft.com/azureml/base:latest"
    assert again.register(ws).version == "2"
    assert Environment.get(ws, "train-env").docker.base_image.endswith("base:latest")
    first = Environment.get(ws, "train-env", version="1")
    assert first.docker.enabled is False
    assert list(first.python.conda_dependencies.pip_packages) == ["scikit-learn==1.4"]
    assert set(Environment.list(ws)) == {"train-env"}
    assert ws.environments["train-env"].version == "2"
    assert Environment.list(ws)["train-env"].version == "2"
    with pytest.raises(EnvironmentNotFoundError):
        Environment.get(ws, "train-env", version="3")
    with pytest.raises(EnvironmentNotFoundError):
        Environment.get(ws, "nope")
    events = ws.ledger.application.stream_events(environment_stream_id("train-env"))
    assert [type(e).TOPIC for e in events] == [  # type: ignore[attr-defined]
        EnvironmentAggregate.Created.TOPIC, EnvironmentAggregate.Registered.TOPIC,
        EnvironmentAggregate.Registered.TOPIC]


def test_environment_from_files(tmp_path: Path) -> None:
    conda = tmp_path / "env.yml"
    conda.write_text(textwrap.dedent("""\
        name: project_environment
        channels:
          - conda-forge
        dependencies:
          - python=3.11  # pinned
          - numpy
          - pip:
            - scikit-learn==1.4
            - joblib
        """))
    env = Environment.from_conda_specification(name="conda-env", file_path=str(conda))
    assert list(env.python.conda_dependencies.conda_packages) == ["python=3.11", "numpy"]
    assert list(env.python.conda_dependencies.pip_packages) == ["scikit-learn==1.4", "joblib"]
    assert env.python.user_managed_dependencies is False
    text = env.python.conda_dependencies.serialize_to_string()
    assert "- conda-forge" in text and "  - joblib" in text
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\ntorch==2.2\n\npandas  # data\n")
    pip_env = Environment.from_pip_requirements("pip-env", requirements)
    assert list(pip_env.python.conda_dependencies.pip_packages) == ["torch==2.2", "pandas"]
    with pytest.raises(ValidationError, match="Cannot read"):
        Environment.from_pip_requirements("x", tmp_path / "missing.txt")
    with pytest.raises(ValidationError, match="environment name"):
        Environment("")


def test_environment_from_an_existing_conda_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ValidationError, match="conda is not installed"):
        Environment.from_existing_conda_environment("local-env", "myenv")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "conda"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = env ]; then
          printf 'name: myenv\\ndependencies:\\n  - python=3.11\\n  - pip:\\n    - torch\\n'
        else
          echo {sys.executable}
        fi
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    env = Environment.from_existing_conda_environment("local-env", "myenv")
    assert env.python.user_managed_dependencies is True
    assert env.python.interpreter_path == sys.executable
    assert list(env.python.conda_dependencies.pip_packages) == ["torch"]


def test_script_run_config_always_has_a_run_configuration() -> None:
    env = Environment("e1")
    config = ScriptRunConfig(source_directory=".", script="train.py", arguments=["--lr", 0.1],
                             environment=env, compute_target="cpu-cluster")
    assert isinstance(config.run_config, RunConfiguration)
    assert config.run_config.environment is env and config.environment is env
    assert config.run_config.target == "cpu-cluster"
    assert config.run_config.script == "train.py"
    plain = ScriptRunConfig(".", "train.py")
    assert isinstance(plain.run_config, RunConfiguration)
    assert plain.run_config.environment.name == "runledger-default"
    given = RunConfiguration()
    given.target = "gpu"
    given.environment = Environment("from-run-config")
    config = ScriptRunConfig(".", "train.py", run_config=given)
    assert config.run_config is given and config.target == "gpu"
    assert config.environment.name == "from-run-config"
    with pytest.raises(ValidationError, match="Environment"):
        ScriptRunConfig(".", "train.py", environment="conda-env")


SCRIPT = """\
import os
import sys

from ledger.run import Run, _OfflineRun

run = Run.get_context()
assert not isinstance(run, _OfflineRun)
run.log("offline", int(isinstance(run, _OfflineRun)))
run.tag("marker", os.environ.get("FROM_ENV", "unset"))
run.tag("wrapped", os.environ.get("WRAPPED_BY", "no"))
run.tag("args", " ".join(sys.argv[1:]))
print("trained")
"""


def test_a_submitted_script_imports_ledger_run_and_records_its_environment(
        shared_store_url: str, tmp_path: Path) -> None:
    ws = Workspace(store=shared_store_url)
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(SCRIPT)
    env = Environment("train-env")
    env.environment_variables["FROM_ENV"] = "set-by-environment"
    config = ScriptRunConfig(source_directory=str(source), script="train.py",
                             arguments=["--epochs", 2], compute_target="cpu-cluster",
                             environment=env)
    run = Experiment(ws, "submitted").submit(config)
    details = wait_ended(run)
    assert details["status"] == "Completed", run.get_details_with_logs()
    assert run.get_metrics() == {"offline": 0}
    assert run.get_tags() == {"marker": "set-by-environment", "wrapped": "no",
                              "args": "--epochs 2"}
    definition = details["runDefinition"]
    assert isinstance(definition, dict)
    assert definition["script"] == "train.py"
    assert definition["arguments"] == ["--epochs", "2"]
    assert definition["target"] == "cpu-cluster"
    assert definition["environment"] == {"name": "train-env", "version": "1"}
    recorded = run.get_environment()
    assert (recorded.name, recorded.version) == ("train-env", "1")
    assert recorded.environment_variables == {"FROM_ENV": "set-by-environment"}
    # the run definition is also in the index rows `run list` answers from
    row = next(Experiment(ws, "submitted").get_runs())
    assert row.get_details()["runDefinition"]["environment"]["version"] == "1"
    # another submission with a changed environment records the new version
    env.environment_variables["FROM_ENV"] = "changed"
    second = Experiment(ws, "submitted").submit(config)
    wait_ended(second)
    assert second.get_environment().version == "2"
    assert run.get_environment().version == "1"  # what the first run ran with, still


def test_a_user_managed_environment_runs_its_interpreter(shared_store_url: str,
                                                        tmp_path: Path) -> None:
    ws = Workspace(store=shared_store_url)
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(SCRIPT)
    wrapper = tmp_path / "my-python"
    wrapper.write_text(f"#!/bin/sh\nWRAPPED_BY=my-python exec {sys.executable} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = Environment("byo-python")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(wrapper)
    run = Experiment(ws, "byo").submit(ScriptRunConfig(str(source), "train.py",
                                                       environment=env))
    assert wait_ended(run)["status"] == "Completed"
    assert run.get_tags()["wrapped"] == "my-python"
    assert run.get_environment().python.interpreter_path == str(wrapper)


def test_a_run_that_was_not_submitted_has_no_environment(exp: Experiment) -> None:
    run = exp.start_logging()
    assert "runDefinition" not in run.get_details()
    with pytest.raises(ValidationError, match="no environment"):
        run.get_environment()


# ---------------------------------------------------------------------------------- offline runs
def test_get_context_outside_a_submitted_run_is_an_offline_run(tmp_path: Path) -> None:
    code = textwrap.dedent("""\
        from ledger.run import Run, _OfflineRun
        run = Run.get_context()
        assert isinstance(run, _OfflineRun) and isinstance(run, Run)
        assert Run.get_context() is run
        run.log("accuracy", 0.9)
        print(run.id)
        """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env["PYTHONPATH"] = str(Path(ledger.__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    run_id = done.stdout.strip()
    ws = Workspace.from_config()  # the offline run went to the default ledger, experiment offline
    run = Run(Experiment(ws, "offline"), run_id)
    assert run.get_status() == "Completed"  # ended at interpreter exit
    assert run.get_metrics() == {"accuracy": 0.9}
    assert run.type == "experiment_run"


def test_script_run_config_and_run_configuration_attributes(tmp_path: Path) -> None:
    config = ScriptRunConfig(source_directory=str(tmp_path), script="train.py",
                             arguments=["--lr", 0.1], compute_target="cpu-cluster",
                             max_run_duration_seconds=30)
    assert config.source_directory == str(tmp_path)
    assert config.arguments == ["--lr", 0.1] == config.run_config.arguments
    assert config.compute_target == "cpu-cluster"
    assert config.max_run_duration_seconds == 30 == config.run_config.max_run_duration_seconds
    assert config.command is None
    command = ScriptRunConfig(".", command=["python", "train.py", "--x"])
    assert command.command == ["python", "train.py", "--x"] and command.script is None
    run_config = RunConfiguration()
    assert (run_config.framework, run_config.communicator, run_config.node_count) == (
        "Python", "None", 1)
    assert run_config.max_run_duration_seconds is None
    assert run_config.environment_variables is run_config.environment.environment_variables


def test_environment_clone_and_docker_image(ws: Workspace, tmp_path: Path) -> None:
    base = Environment.from_docker_image("gpu-env", "mcr.microsoft.com/azureml/gpu:latest")
    assert base.docker.base_image == "mcr.microsoft.com/azureml/gpu:latest"
    base.environment_variables["A"] = "1"
    base.register(ws)
    copy = base.clone("gpu-env-copy")
    assert (copy.name, copy.version) == ("gpu-env-copy", None)
    assert copy.docker.base_image == base.docker.base_image
    assert copy.environment_variables == {"A": "1"}
    assert copy.register(ws).version == "1"
    assert copy.get_details()["name"] == "gpu-env-copy"
    assert Environment.get(ws, "gpu-env-copy") == copy
