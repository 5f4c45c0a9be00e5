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
    ],
    ids=["foreign", "other-version"],
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
