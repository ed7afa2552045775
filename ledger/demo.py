"""The demo a newcomer runs first: ``python -m ledger.demo``.

It walks the seed how-to on the embedded default ledger (``./.runledger/ledger.db``): starts runs,
monitors them, logs metrics, creates child runs, adds properties and tags, and queries runs by
them. Run it twice: the second run finds the first one's runs too, because the ledger persists.
"""

from __future__ import annotations

import json

from ledger import Experiment, PropertyImmutableError, Run, Workspace


def main() -> None:
    """Run the demo and print what each step shows."""
    ws = Workspace.from_config()
    print(f"Workspace: {ws.name} ({ws.store_url})")
    exp = Experiment(workspace=ws, name="explore-runs")

    print("\n# Start a run and log into it")
    notebook_run = exp.start_logging()
    notebook_run.log(name="message", value="Hello from run!")
    print("status:", notebook_run.get_status())
    print("details:", json.dumps(notebook_run.get_details(), indent=2))
    notebook_run.complete()
    print("status after complete():", notebook_run.get_status())

    print("\n# A run in a with-block completes by itself")
    with exp.start_logging() as notebook_run:
        for step in range(5):
            notebook_run.log("loss", 1.0 / (step + 1), step=step)
        print("inside:", notebook_run.get_status())
    print("after:", notebook_run.get_status())
    print("metrics:", notebook_run.get_metrics())

    print("\n# Child runs")
    with exp.start_logging() as parent_run:
        for c, _count in enumerate(range(5)):
            with parent_run.child_run() as child:
                child.log(name="Hello from child run", value=c)
        batch = parent_run.create_children(count=3)
        for child in batch:
            child.complete()
        print("children:", len(list(parent_run.get_children())))

    print("\n# Properties are immutable, tags are not")
    local_run = exp.start_logging()
    local_run.add_properties({"author": "azureml-user"})
    print(local_run.get_properties())
    try:
        local_run.add_properties({"author": "different-user"})
    except PropertyImmutableError as error:
        print("refused:", error)
    local_run.tag("quality", "great run")
    print(local_run.get_tags())
    local_run.tag("quality", "fantastic run")
    print(local_run.get_tags())
    local_run.tag("worth another look")
    print(local_run.get_tags())
    local_run.complete()

    print("\n# Query runs by properties and tags")
    found = list(exp.get_runs(properties={"author": "azureml-user"},
                              tags={"quality": "fantastic run"}))
    print(f"{len(found)} run(s) with author=azureml-user and quality=fantastic run:")
    for run in found[:5]:
        print(f"  {run.id}  #{run.number}  {run.get_status()}")
    found = list(exp.get_runs(properties={"author": "azureml-user"}, tags="worth another look"))
    print(f"{len(found)} run(s) tagged 'worth another look'")

    print("\n# Search beyond equality (MLflow's filter grammar) and the best run")
    good = list(exp.get_runs(filter="metrics.loss < 0.5 and attributes.status = 'Completed'",
                             order_by=["metrics.loss ASC"], max_results=3))
    print(f"{len(good)} run(s) with a last loss below 0.5, best first")
    best = exp.best_run("loss", mode="min")
    if best is not None:
        print(f"best run by loss: {best.id}  loss={best.get_metrics()['loss'][-1]}")

    print("\n# The audit trail of the last run")
    for entry in Run.get(ws, local_run.id).get_history():
        print(f"  {entry.time:%H:%M:%S.%f}  {entry.actor.user}@{entry.actor.host}"
              f"  {entry.kind:<18} {json.dumps(entry.payload)[:70]}")

    print("\nTry the CLI on the same ledger:")
    print("  runledger run list -e explore-runs -o table")
    print("  runledger run list -e explore-runs \"[?properties.author=='azureml-user' && "
          "tags.quality=='fantastic run']\"")
    print("  runledger run list -e explore-runs --filter \"metrics.loss < 0.5\" "
          "--order-by \"metrics.loss ASC\" -o table")


if __name__ == "__main__":
    main()
