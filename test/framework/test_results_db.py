"""The results database (test/common/results/db.py): schema, bad files, concurrent writers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common.results import db
from test.framework.conftest import REPO_ROOT
from test.framework.results_data import all_passing, record_run

# Integration tests: every test opens DuckDB files (~35 ms of CPU a connection); plain
# `pytest` counts them in one line, every nox session runs them (--run-slow).
pytestmark = pytest.mark.slow

duckdb = pytest.importorskip("duckdb", reason="duckdb is needed for the results database")


def test_a_new_database_gets_the_schema_and_a_complete_run(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.duckdb"
    record_run(path, 1, all_passing(["bert"]), {"bert": 2.0})
    with db.connect(path) as connection:
        assert db.rows(connection, "SELECT version FROM schema_info") == [
            {"version": db.SCHEMA_VERSION}
        ]
        (run,) = db.rows(connection, "SELECT * FROM runs")
        assert run["complete"]
        assert run["exit_status"] == 0
        assert run["finished_at"] is not None
        assert connection.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 3
        (measured,) = db.rows(connection, "SELECT * FROM measurements")
        assert measured["latency_median_ms"] == 2.0
        assert len(measured["latency_samples_ms"]) == 10


def test_a_run_that_never_finished_stays_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    record_run(path, 1, all_passing(["bert"]), complete=False)
    with db.connect(path) as connection:
        (run,) = db.rows(connection, "SELECT complete, finished_at FROM runs")
    assert run == {"complete": False, "finished_at": None}


def test_reading_a_missing_database_is_an_error(tmp_path: Path) -> None:
    absent = db.connect(tmp_path / "absent.duckdb")
    with pytest.raises(db.ResultsDatabaseError, match="no results database here yet"):
        absent.__enter__()
    assert not (tmp_path / "absent.duckdb").exists()


@given(content=st.binary(min_size=1, max_size=64))
def test_a_corrupted_file_is_an_error_and_kept(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("corrupt") / "history.duckdb"
    content = content[:8] + b"XXXX" + content[12:] if len(content) >= 12 else content
    path.write_bytes(content)
    with pytest.raises(db.ResultsDatabaseError, match="not a DuckDB database"):
        record_run(path, 1, all_passing(["bert"]))
    assert path.read_bytes() == content


def test_an_sqlite_file_is_refused_without_loading_an_extension(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "history.duckdb"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (a)")
    before = path.read_bytes()
    with pytest.raises(db.ResultsDatabaseError, match="not a DuckDB database"):
        record_run(path, 1, all_passing(["bert"]))
    assert path.read_bytes() == before


def _foreign(path: Path, sql: str) -> bytes:
    connection = duckdb.connect(str(path))
    connection.execute(sql)
    connection.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("CREATE TABLE invoices (id INTEGER)", "not a results database"),
        (db.SCHEMA + "INSERT INTO schema_info VALUES (99, now());", "schema version"),
        (
            db.SCHEMA + f"DROP TABLE backend_results; INSERT INTO schema_info VALUES "
            f"({db.SCHEMA_VERSION}, now());",
            "without its tables backend_results",
        ),
    ],
    ids=["foreign", "other-version", "version-without-its-tables"],
)
def test_another_duckdb_database_is_an_error_and_kept(
    tmp_path: Path, sql: str, message: str
) -> None:
    path = tmp_path / "history.duckdb"
    before = _foreign(path, sql)
    with pytest.raises(db.ResultsDatabaseError, match=message):
        record_run(path, 1, all_passing(["bert"]))
    assert path.read_bytes() == before


WRITER = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from test.framework.results_data import all_passing, record_run

path, first = Path(sys.argv[1]), int(sys.argv[2])
for index in range(first, first + {runs}):
    record_run(path, index, all_passing(["bert", "gpt2"]), {{"bert": 1.0}})
"""


@pytest.mark.slow  # two writer processes, each opening the database many times
def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    path, runs = tmp_path / "history.duckdb", 15
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(REPO_ROOT), runs=runs))
    writers = [
        subprocess.Popen([sys.executable, str(script), str(path), str(first)])
        for first in (0, 1000)
    ]
    assert [writer.wait(timeout=240) for writer in writers] == [0, 0]
    with db.connect(path) as connection:
        counts = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE complete) FROM runs"
        ).fetchone()
        outcomes = connection.execute("SELECT count(*) FROM outcomes").fetchone()[0]
        measurements = connection.execute("SELECT count(*) FROM measurements").fetchone()[0]
    assert counts == (2 * runs, 2 * runs)
    assert outcomes == 2 * runs * 6
    assert measurements == 2 * runs


HOLDER = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


@pytest.mark.slow  # another process holds the lock for a while
def test_a_writer_waits_for_the_lock_and_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    record_run(path, 0, all_passing(["bert"]))
    holder = _hold(path, 1.5)
    record_run(path, 1, all_passing(["bert"]))  # waits until the holder lets go
    holder.wait(timeout=30)
    holder = _hold(path, 5)
    locked = db.connect(path, write=True, wait_s=0.3)
    with pytest.raises(db.ResultsDatabaseError, match=r"still locked \(or being written\)"):
        locked.__enter__()
    holder.kill()
    holder.wait()
    with db.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_directory_at_the_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(db.ResultsDatabaseError, match="not a file"):
        record_run(tmp_path, 1, all_passing(["bert"]))


@pytest.mark.parametrize("written", ["zeros", "first block"])
def test_a_database_another_writer_is_creating_is_waited_for(tmp_path: Path, written: str) -> None:
    """Two first runs at once: the second may open the file between its creation and
    its header (DuckDB: "not a valid DuckDB database file" or "could not read enough
    bytes").  A file that was empty when checked is retried, not refused."""
    path, finished = tmp_path / "history.duckdb", tmp_path / "finished.duckdb"
    record_run(finished, 1, all_passing(["bert"]))
    head = b"\0" * 4096 if written == "zeros" else finished.read_bytes()[:4096]
    path.write_bytes(head)

    def finish_writing() -> None:
        time.sleep(0.5)
        os.replace(finished, path)

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        connection = db._connect(path, read_only=True, wait_s=30, fresh=True)
    finally:
        writer.join()
    count = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
    connection.close()
    assert count == 1


def test_a_half_written_file_that_was_not_fresh_is_an_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    path.write_bytes(b"\0" * 4096)
    started = time.monotonic()
    with pytest.raises(db.ResultsDatabaseError, match="not a valid DuckDB database"):
        db._connect(path, read_only=True, wait_s=30, fresh=False)
    assert time.monotonic() - started < 10
    assert path.read_bytes() == b"\0" * 4096  # kept as it was


#: Schema version 1 as it shipped (before backend_results), frozen here: a migration
#: test needs the old database as users have it, not one derived from today's schema.
SCHEMA_V1 = """
CREATE TABLE schema_info (version INTEGER NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP, complete BOOLEAN NOT NULL, exit_status INTEGER,
    git_commit VARCHAR, git_dirty BOOLEAN, python VARCHAR, versions VARCHAR,
    platform VARCHAR, fingerprint VARCHAR, fingerprint_id VARCHAR, command_line VARCHAR);
CREATE TABLE outcomes (run_id VARCHAR NOT NULL, node_id VARCHAR NOT NULL, module VARCHAR,
    check_name VARCHAR, architecture VARCHAR, model_class VARCHAR, modality VARCHAR,
    task VARCHAR, platform VARCHAR, weights VARCHAR, outcome VARCHAR NOT NULL,
    duration_s DOUBLE, reason VARCHAR, PRIMARY KEY (run_id, node_id));
CREATE TABLE measurements (run_id VARCHAR NOT NULL, node_id VARCHAR NOT NULL,
    architecture VARCHAR, model_class VARCHAR, platform VARCHAR, latency_median_ms DOUBLE,
    latency_spread_ms DOUBLE, latency_samples_ms DOUBLE[], peak_memory_bytes BIGINT,
    parameters BIGINT, PRIMARY KEY (run_id, node_id));
INSERT INTO schema_info VALUES (1, TIMESTAMP '2026-01-01 00:00:00');
INSERT INTO runs (run_id, started_at, finished_at, complete, exit_status, platform,
    fingerprint_id, versions) VALUES ('oldrun', TIMESTAMP '2026-01-01 11:00:00',
    TIMESTAMP '2026-01-01 11:30:00', true, 0, 'cpu', 'fp', '{}');
INSERT INTO outcomes (run_id, node_id, check_name, architecture, platform, outcome)
    VALUES ('oldrun', 'test_x.py::test_forward[bert-cpu]', 'forward', 'bert', 'cpu', 'passed');
"""


def _version_and_tables(path: Path) -> tuple[int, set[str]]:
    with db.connect(path) as connection:
        (version,) = connection.execute("SELECT version FROM schema_info").fetchone()
        names = {
            row[0]
            for row in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    return version, names


def test_a_version_1_database_is_read_as_it_is_and_migrated_by_the_next_write(
    tmp_path: Path,
) -> None:
    from test.common.results.history import history

    path = tmp_path / "history.duckdb"
    before = _foreign(path, SCHEMA_V1)
    with db.connect(path) as connection:  # reading neither fails nor migrates
        assert history(connection).latest["run_id"] == "oldrun"
        assert not db.has_table(connection, "backend_results")
    assert path.read_bytes() == before
    record_run(path, 1, all_passing(["bert"]), backends={("bert", "onnx"): ("pass", 0.5)})
    assert _version_and_tables(path) == (db.SCHEMA_VERSION, set(db.TABLES))
    with db.connect(path) as connection:
        runs = [row["run_id"] for row in db.rows(connection, "SELECT run_id FROM runs")]
        (backend,) = db.rows(connection, "SELECT * FROM backend_results")
        old_outcomes = connection.execute(
            "SELECT count(*) FROM outcomes WHERE run_id = 'oldrun'"
        ).fetchone()[0]
    assert sorted(runs) == ["oldrun", "run0001"]
    observed = [backend[key] for key in ("architecture", "backend", "status", "latency_ratio")]
    assert observed == ["bert", "onnx", "pass", 0.5]
    assert old_outcomes == 1


def test_a_migration_lands_with_its_write_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    _foreign(path, SCHEMA_V1)

    def failing_write() -> None:
        with db.connect(path, write=True) as connection:
            connection.execute("DELETE FROM outcomes")
            raise RuntimeError("the write failed")

    with pytest.raises(RuntimeError, match="the write failed"):
        failing_write()
    assert _version_and_tables(path) == (1, set(db.BASE_TABLES))
    with db.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 1


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_a_newer_version_stays_an_error_and_is_kept(tmp_path: Path, write: bool) -> None:
    path = tmp_path / "history.duckdb"
    newer = db.SCHEMA + f"INSERT INTO schema_info VALUES ({db.SCHEMA_VERSION + 1}, now());"
    before = _foreign(path, newer)
    with pytest.raises(db.ResultsDatabaseError, match="schema version"):
        db.connect(path, write=write).__enter__()
    assert path.read_bytes() == before
