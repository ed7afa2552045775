"""Real MLflow tracking stores for the importer's tests, written by MLflow's own client."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

# A small store: two experiments, nested runs, every status, params, tags and metric histories.
T0 = 1_700_000_000_000  # ms
# Artifacts of the "sweep" run, by MLflow path: nested folders, binary content, an empty file.
SWEEP_ARTIFACTS = {
    "config.yaml": b"lr: 0.1\noptimizer: adam\n",
    "model/MLmodel": b"flavors: {}\n",
    "model/data/weights.bin": bytes(range(256)) * 40,
    "plots/epoch/0/loss.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
    "plots/epoch/1/empty.txt": b"",
}


def log_artifacts(client: Any, run_id: str, files: dict[str, bytes]) -> None:
    """Log ``files`` (path: content) to a run the way users do: a folder through
    ``log_artifacts``, one file at its root through ``log_artifact``."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder, "tree")
        for path, data in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for top in sorted(root.iterdir()):
            if top.is_dir():
                client.log_artifacts(run_id, str(top), artifact_path=top.name)
            else:
                client.log_artifact(run_id, str(top))


def populate(client: Any) -> dict[str, str]:
    """Fill an empty MLflow store; return the MLflow run ids by a short name."""
    ids: dict[str, str] = {}
    exp_a = client.create_experiment("alpha")
    exp_b = client.create_experiment("beta")

    def run(name: str, experiment: str, *, status: str, params: dict[str, str],
            tags: dict[str, str], metrics: dict[str, list[tuple[float, int, int]]],
            start: int, end: int | None, parent: str | None = None) -> str:
        all_tags = {"mlflow.user": "alice", "mlflow.source.name": "train.py",
                    "mlflow.source.type": "LOCAL", "mlflow.source.git.commit": "abc123",
                    **tags}
        if parent is not None:
            all_tags["mlflow.parentRunId"] = ids[parent]
        created = client.create_run(experiment, start_time=start, tags=all_tags, run_name=name)
        run_id = created.info.run_id
        ids[name] = run_id
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for key, history in metrics.items():
            for value, step, offset in history:
                client.log_metric(run_id, key, value, timestamp=start + offset, step=step)
        if status != "RUNNING":
            client.set_terminated(run_id, status=status, end_time=end)
        return run_id

    run("sweep", exp_a, status="FINISHED", params={"lr": "0.1", "optimizer": "adam"},
        tags={"team": "vision", "stage": "dev"},
        metrics={"loss": [(1.0, 0, 10), (0.5, 1, 20), (0.25, 2, 30), (0.25, 2, 30)],
                 "acc": [(0.1, 0, 15), (float("nan"), 1, 25)]},
        start=T0, end=T0 + 1000)
    log_artifacts(client, ids["sweep"], SWEEP_ARTIFACTS)
    run("child-1", exp_a, status="FINISHED", params={"lr": "0.01", "optimizer": "sgd"},
        tags={"team": "vision"}, metrics={"loss": [(0.9, 0, 5), (0.8, 1, 6)]},
        start=T0 + 100, end=T0 + 500, parent="sweep")
    client.log_text(ids["child-1"], "child one", "notes/readme.txt")
    run("child-2", exp_a, status="FAILED", params={"lr": "0.001", "optimizer": "adam"},
        tags={"team": "nlp"}, metrics={"loss": [(2.0, 0, 5)]},
        start=T0 + 200, end=T0 + 600, parent="sweep")
    run("live", exp_a, status="RUNNING", params={"lr": "0.1", "optimizer": "sgd"},
        tags={"team": "vision", "stage": "prod"}, metrics={"loss": [(3.0, 0, 1)]},
        start=T0 + 2000, end=None)
    run("killed", exp_b, status="KILLED", params={"lr": "0.5"}, tags={"stage": "dev"},
        metrics={}, start=T0 + 3000, end=T0 + 3500)
    run("queued", exp_b, status="SCHEDULED", params={}, tags={}, metrics={},
        start=T0 + 4000, end=None)
    return ids
