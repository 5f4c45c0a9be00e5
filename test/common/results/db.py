"""The results database: a DuckDB file, its schema, and safe opening and writing.

DuckDB lets one process at a time open a file for writing (an OS lock on the file).
Every write here is short: open, one transaction, close.  A second process that
finds the file locked waits and retries (up to ``LOCK_WAIT_S``), so two runs that
finish at the same moment both land; each run writes only rows keyed by its own
run id, so neither can overwrite the other.

A file at the path that is not a DuckDB database, a DuckDB database without this
schema, or one of a newer schema version, is an error that names the file; it is
never written to or replaced.  An older version whose step up is purely additive
(``MIGRATIONS``: new tables only) is brought up to date inside the first write
transaction, so the step lands with the run's rows or not at all; reading an older
database leaves it as it is (readers ask :func:`has_table`).  DuckDB's extension
auto-loading is switched off: given an SQLite file it would otherwise try to
download a scanner.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
#: Relative to the repository (pytest's rootdir); results/ and *.duckdb are ignored by git.
DEFAULT_PATH = Path("results") / "history.duckdb"
#: How long a writer waits for another process to release the file.
LOCK_WAIT_S = 120.0
#: Bytes 8..11 of every DuckDB database file.
DUCKDB_MAGIC = b"DUCK"
#: Forward calls timed per architecture (the subject is built and already warm): up to
#: MEASURE_CALLS, stopping after MIN_CALLS once MEASURE_BUDGET_S is spent (a 270 ms
#: forward gets 3 calls, a 2 ms one 10), which keeps recording within 10% of a run.
MEASURE_CALLS = 10
MIN_CALLS = 3
MEASURE_BUDGET_S = 0.03
CONNECT_CONFIG = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}

#: Every results database has these; version 2 added backend_results.
BASE_TABLES = ("schema_info", "runs", "outcomes", "measurements")
BACKEND_RESULTS = """
CREATE TABLE backend_results (
    run_id VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    architecture VARCHAR NOT NULL,
    backend VARCHAR NOT NULL,
    platform VARCHAR,
    status VARCHAR NOT NULL,
    difference DOUBLE,
    latency_ratio DOUBLE,
    reason VARCHAR,
    PRIMARY KEY (run_id, node_id)
);
"""
TABLES = (*BASE_TABLES, "backend_results")
#: version -> the statements that bring a database of that version to the next one.
#: Only additive steps belong here (new tables): a step that changed or dropped what
#: a database holds would be an explicit, reviewed command instead.
MIGRATIONS = {1: BACKEND_RESULTS}
SCHEMA = (
    BACKEND_RESULTS
    + """
CREATE TABLE schema_info (version INTEGER NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    complete BOOLEAN NOT NULL,
    exit_status INTEGER,
    git_commit VARCHAR,
    git_dirty BOOLEAN,
    python VARCHAR,
    versions VARCHAR,
    platform VARCHAR,
    fingerprint VARCHAR,
    fingerprint_id VARCHAR,
    command_line VARCHAR
);
CREATE TABLE outcomes (
    run_id VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    module VARCHAR,
    check_name VARCHAR,
    architecture VARCHAR,
    model_class VARCHAR,
    modality VARCHAR,
    task VARCHAR,
    platform VARCHAR,
    weights VARCHAR,
    outcome VARCHAR NOT NULL,
    duration_s DOUBLE,
    reason VARCHAR,
    PRIMARY KEY (run_id, node_id)
);
CREATE TABLE measurements (
    run_id VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    architecture VARCHAR,
    model_class VARCHAR,
    platform VARCHAR,
    latency_median_ms DOUBLE,
    latency_spread_ms DOUBLE,
    latency_samples_ms DOUBLE[],
    peak_memory_bytes BIGINT,
    parameters BIGINT,
    PRIMARY KEY (run_id, node_id)
);
"""
)
OUTCOME_COLUMNS = (
    "run_id",
    "node_id",
    "module",
    "check_name",
    "architecture",
    "model_class",
    "modality",
    "task",
    "platform",
    "weights",
    "outcome",
    "duration_s",
    "reason",
)
MEASUREMENT_COLUMNS = (
    "run_id",
    "node_id",
    "architecture",
    "model_class",
    "platform",
    "latency_median_ms",
    "latency_spread_ms",
    "latency_samples_ms",
    "peak_memory_bytes",
    "parameters",
)
BACKEND_COLUMNS = (
    "run_id",
    "node_id",
    "architecture",
    "backend",
    "platform",
    "status",
    "difference",
    "latency_ratio",
    "reason",
)


class ResultsDatabaseError(Exception):
    """The file at the database path cannot be used as a results database."""


def utc_now() -> datetime.datetime:
    """Now in UTC, without a zone (the TIMESTAMP columns hold UTC)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise ResultsDatabaseError(
            "duckdb is not installed: `pip install -c constraints.txt duckdb` "
            "(or run with --no-results-db)"
        ) from None
    return duckdb


def check_file(path: Path) -> bool:
    """Refuse an existing file that is not a DuckDB database (it is left untouched).
    True when the file is absent or still empty: another process may be creating it."""
    if not path.exists():
        return True
    if not path.is_file():
        raise ResultsDatabaseError(f"{path}: not a file; the results database must be a file")
    with path.open("rb") as handle:
        header = handle.read(12)
    # An empty file is a database another process has just created and not yet
    # written (DuckDB writes its header blocks at once): the lock decides, not us.
    if header and header[8:12] != DUCKDB_MAGIC:
        raise ResultsDatabaseError(
            f"{path}: not a DuckDB database (corrupted or another kind of file); it is kept "
            "as it is. Move it away or choose another path with --results-db."
        )
    return not header


def _is_lock_error(error: Exception) -> bool:
    return "lock" in str(error).lower()


def _is_half_written(error: Exception) -> bool:
    """DuckDB's words for a file whose header or first blocks are not written yet."""
    text = str(error).lower()
    return "not a valid duckdb database" in text or "could not read enough bytes" in text


def _connect(path: Path, read_only: bool, wait_s: float, fresh: bool = False) -> Any:
    """A connection, retried while another process holds the file's lock, or, for a
    file that was `fresh` (absent or empty when checked), while its creator is still
    writing its header (DuckDB then calls it "not a valid DuckDB database file")."""
    duckdb = _duckdb()
    deadline = time.monotonic() + wait_s
    pause = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=CONNECT_CONFIG)
        except duckdb.Error as error:
            retry = _is_lock_error(error) or (fresh and _is_half_written(error))
            if not retry:
                raise ResultsDatabaseError(f"{path}: {error}") from None
            if time.monotonic() >= deadline:
                raise ResultsDatabaseError(
                    f"{path}: still locked (or being written) by another process after "
                    f"{wait_s:.0f} s: {error}"
                ) from None
        # Jitter, so that two waiting writers do not retry in lockstep.
        time.sleep(pause * (1 + random.random()))
        pause = min(pause * 2, 0.5)


def _check_schema(connection: Any, path: Path) -> int | None:
    """The schema version found (ours, or an older one MIGRATIONS can bring up to
    date); None when the database is empty."""
    listed = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    names = {row[0] for row in listed}
    if not names:
        return None
    if not set(BASE_TABLES) <= names:
        raise ResultsDatabaseError(
            f"{path}: a DuckDB database, but not a results database (tables: "
            f"{', '.join(sorted(names))}); it is kept as it is. Choose another --results-db."
        )
    versions = [row[0] for row in connection.execute("SELECT version FROM schema_info").fetchall()]
    if len(versions) != 1 or not (versions[0] == SCHEMA_VERSION or versions[0] in MIGRATIONS):
        raise ResultsDatabaseError(
            f"{path}: schema version {versions}, this suite reads versions "
            f"{sorted(MIGRATIONS)} and {SCHEMA_VERSION}; it is kept as it is (docs/RESULTS.md)."
        )
    if versions[0] == SCHEMA_VERSION and not set(TABLES) <= names:
        raise ResultsDatabaseError(
            f"{path}: schema version {SCHEMA_VERSION} without its tables "
            f"{', '.join(sorted(set(TABLES) - names))}; it is kept as it is."
        )
    return versions[0]


def _migrate(connection: Any, version: int) -> None:
    """Bring a database of `version` up to SCHEMA_VERSION (inside the caller's transaction)."""
    while version < SCHEMA_VERSION:
        connection.execute(MIGRATIONS[version])
        version += 1
    connection.execute("UPDATE schema_info SET version = ?", [SCHEMA_VERSION])


def has_table(connection: Any, table: str) -> bool:
    """Whether `table` is in the database (an older version read as it is may lack it)."""
    found = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]
    ).fetchone()
    return bool(found[0])


@contextlib.contextmanager
def connect(path: Path | str, *, write: bool = False, wait_s: float = LOCK_WAIT_S) -> Iterator[Any]:
    """A checked connection; with `write`, the schema is created in a new file and
    everything done inside the block is one transaction (all of it lands, or none)."""
    path = Path(path)
    fresh = check_file(path)
    if not write and not path.exists():
        raise ResultsDatabaseError(f"{path}: no results database here yet (run the model tests)")
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
    connection = _connect(path, read_only=not write, wait_s=wait_s, fresh=fresh)
    try:
        version = _check_schema(connection, path)
        if not write:
            yield connection
            return
        connection.execute("BEGIN TRANSACTION")
        if version is None:
            connection.execute(SCHEMA)
            connection.execute("INSERT INTO schema_info VALUES (?, ?)", [SCHEMA_VERSION, utc_now()])
        elif version < SCHEMA_VERSION:
            _migrate(connection, version)
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()


def start_run(path: Path | str, run: Mapping[str, Any]) -> None:
    """Insert the run as incomplete: a run that never finishes stays marked so."""
    row = {**run, "complete": False, "finished_at": None, "exit_status": None}
    for key in ("versions", "fingerprint"):
        row[key] = json.dumps(row.get(key) or {}, sort_keys=True)
    columns = sorted(row)
    with connect(path, write=True) as connection:
        connection.execute(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [row[column] for column in columns],
        )


#: Rows per INSERT statement: one statement of many rows is ~100x faster than
#: executemany, which DuckDB runs row by row (450 outcomes took 2.2 s).
INSERT_CHUNK = 200


def _insert(connection: Any, table: str, columns: Sequence[str], rows: Sequence[Mapping]) -> None:
    row_marks = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        connection.execute(
            f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
            f"VALUES {', '.join(row_marks for _ in chunk)}",
            [row.get(column) for row in chunk for column in columns],
        )


def add_results(
    path: Path | str,
    run_id: str,
    outcomes: Sequence[Mapping[str, Any]],
    measurements: Sequence[Mapping[str, Any]],
    *,
    backends: Sequence[Mapping[str, Any]] = (),
    exit_status: int | None = None,
) -> None:
    """Add outcomes, measurements and backend results of `run_id`; with `exit_status`,
    mark it complete."""
    with connect(path, write=True) as connection:
        for table, columns, records in (
            ("outcomes", OUTCOME_COLUMNS, outcomes),
            ("measurements", MEASUREMENT_COLUMNS, measurements),
            ("backend_results", BACKEND_COLUMNS, backends),
        ):
            _insert(connection, table, columns, [{**r, "run_id": run_id} for r in records])
        if exit_status is not None:
            connection.execute(
                "UPDATE runs SET complete = true, finished_at = ?, exit_status = ? "
                "WHERE run_id = ?",
                [utc_now(), exit_status, run_id],
            )


def rows(connection: Any, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The result of `sql` as dictionaries keyed by column name."""
    cursor = connection.execute(sql, list(parameters))
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
