"""The run index's runs projection is at version ``runledger.runs.v3`` (the archived flag,
property corrections, and each run packed in ``rl_runs.packed``): a ledger indexed by an earlier
version back-fills into the new tables on its next query, with no migration step."""

from __future__ import annotations

from ledger import Experiment, Workspace
from projections.index import RunIndex
from projections.runs import RunProjection


def test_an_index_of_an_earlier_version_back_fills(store_url: str) -> None:
    ws = Workspace(store=store_url)
    exp = Experiment(ws, "versions")
    kept, hidden = exp.start_logging(), exp.start_logging()
    kept.add_properties({"p": "1"})
    kept.correct_property("p", "2", "fixed")
    hidden.archive("old")
    ws.flush()
    app = ws._session.app
    assert RunProjection.name == "runledger.runs.v3"

    index = RunIndex(app)
    index.catch_up()
    # Make it an index of an earlier version: its tracking row under the old name, and rows
    # that know nothing of archiving or corrections.
    dialect = index._dialect
    with dialect.transaction(index._datastore, commit=True) as (_wrapped, cursor):
        cursor.execute(dialect.sql(
            "UPDATE {tracking} SET application_name = ? WHERE application_name = ?"),
            ("runledger.runs.v1", RunProjection.name))
        cursor.execute(dialect.sql("UPDATE {p}rl_runs SET archived = 0"))
        cursor.execute(dialect.sql("UPDATE {p}rl_properties SET value = '1'"))

    fresh = RunIndex(app)  # opening finds no v2 tracking row: fresh tables at position 0
    fresh.catch_up()
    assert [r.run_id for r in fresh.find_runs(experiment_name="versions")] == [kept.id]
    assert [r.run_id for r in fresh.find_runs(experiment_name="versions",
                                              include_archived=True)] == [hidden.id, kept.id]
    assert [r.run_id for r in fresh.find_runs(experiment_name="versions",
                                              properties={"p": "2"})] == [kept.id]
    for run in (kept, hidden):
        run.complete()
