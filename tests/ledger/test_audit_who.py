"""The audit "who" (issue 15, item 9).

``user``, ``host`` and ``pid`` in a run's history are what the writing process declares
(``RUNLEDGER_USER=alice`` works); on PostgreSQL the history also shows the role the server
authenticated for each write (``actor.server_role``), recorded by the server itself (a trigger
filling ``rl_event_writers`` with ``DEFAULT session_user``), so an auditor can tell what the server
vouches for from what the client claims.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner

from ledger import Experiment, Run, Workspace
from ledger.cli.main import cli
from ledger.persistence.postgres import WRITERS_TABLE


def test_the_declared_user_is_a_claim_and_sqlite_has_no_server_role(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_USER", "alice")  # read once, when the workspace opens
    monkeypatch.setattr("ledger.domain.values._actor_cache", {})
    exp = Experiment(Workspace(store=store_url), "audit")
    run = exp.start_logging()
    run.tag("k", "v")
    run.complete()
    history = run.get_history()
    assert {entry.actor.user for entry in history} == {"alice"}
    expected = "postgres" if exp.workspace._store.kind == "postgresql" else None
    assert {entry.actor.server_role for entry in history} == {expected}


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgres_history_shows_the_role_the_server_authenticated(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = Workspace(store=store_url)
    exp = Experiment(owner, "audit")
    run = exp.start_logging()
    run.flush()
    schema = owner._session.app.recorder.datastore.schema  # type: ignore[attr-defined]
    role = "rl_auditee_" + uuid.uuid4().hex[:8]
    admin = psycopg.connect(store_url.split("?")[0], autocommit=True)
    try:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        admin.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        admin.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
        # The writer may not forge the server's record: it has no right on that table.
        admin.execute(f'REVOKE ALL ON "{schema}".{WRITERS_TABLE} FROM "{role}"')
        parts = urlsplit(store_url)
        as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        monkeypatch.setenv("RUNLEDGER_USER", "alice")  # the claim
        monkeypatch.setattr("ledger.domain.values._actor_cache", {})
        other = Workspace(store=as_role)
        theirs = Run.get(other, run.id)
        theirs.tag("who", "alice says")
        theirs.log("m", 1.0)
        theirs.flush()
        history = run.get_history()
        tagged = next(e for e in history if e.kind == "TagsSet")
        assert tagged.actor.user == "alice"
        assert tagged.actor.server_role == role
        logged = next(e for e in history if e.kind == "MetricsLogged")
        assert logged.actor.server_role == role
        created = next(e for e in history if e.kind == "Created")
        assert created.actor.server_role == "postgres"
        with psycopg.connect(as_role.split("?")[0]) as conn, pytest.raises(
                psycopg.errors.InsufficientPrivilege):
            conn.execute(f'INSERT INTO "{schema}".{WRITERS_TABLE} (notification_id, '
                         "server_role) VALUES (-1, 'postgres')")
        result = CliRunner().invoke(cli, ["--store", store_url, "run", "history", "--run", run.id],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f'"server_role": "{role}"' in result.output
        other._session.close()
    finally:
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE usename = '{role}'")
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')
        admin.close()
