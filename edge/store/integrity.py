"""The store is never silently replaced: the initialised marker, start-up checks, backup and salvage.

SQLite creates a new, empty database for a missing or zero-length file. For the gateway that would
silently drop every booking, every undelivered record and who is inside, so:

- the first store created in a directory leaves a marker beside it (``<store>.initialised``); a store
  that has a marker but is missing or zero bytes long is refused (:func:`preflight`), as is a file that
  does not start with the SQLite header;
- the daemon runs ``PRAGMA quick_check`` at start and refuses a damaged store;
- every refusal names the file and the recovery steps (:func:`recovery_steps`): ``parkgate store check``,
  ``parkgate store recover`` (:func:`salvage`: what is readable goes into a new file, the damaged one is
  kept aside) or a backup made with ``parkgate store backup`` (:func:`backup`: SQLite's online backup API,
  safe while the daemon runs).

This module uses sqlite3 directly (not :class:`edge.store.store.Store`) so that it can look at files the
store refuses to open.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ParkgateError

MARKER_SUFFIX = ".initialised"
SQLITE_HEADER = b"SQLite format 3\x00"
DOCS = "docs/operations.md, \"Store recovery\""
_SIDE_FILES = ("-wal", "-shm", "-journal")


class StoreDamagedError(ParkgateError):
    """The store file is missing (after a first start), empty, not SQLite or damaged: parkgate will not
    start on a new empty store in its place. The message names the file and the recovery steps."""


def marker_path(store: Path) -> Path:
    return store.with_name(store.name + MARKER_SUFFIX)


def recovery_steps(store: Path) -> str:
    return (f"stop parkgate, then, as its user (sudo -u parkgate ...): `parkgate store check` to see what "
            f"is wrong; `parkgate store recover` to salvage what is readable into a new {store.name} (the "
            "damaged file is kept aside); or restore a backup made with `parkgate store backup`: "
            f"`parkgate store recover --from BACKUP`. See {DOCS}")


def preflight(store: Path) -> str | None:
    """Why ``store`` must not be opened (None: open it). Before SQLite touches the file."""
    if store.is_dir():
        return f"store {store} is a directory, not a file"
    marker = marker_path(store)
    if not store.exists():
        if marker.exists():
            return (f"store {store} is missing, but {marker.name} says a store was created there before "
                    f"({_marker_note(marker)}); parkgate does not start on a new empty store")
        return None
    size = store.stat().st_size
    wal = store.with_name(store.name + "-wal")
    if size == 0:
        if wal.exists() and wal.stat().st_size > 0:
            return None  # a store whose pages are all still in its write-ahead log
        if marker.exists():
            return (f"store {store} is empty (0 bytes), but {marker.name} says a store was created there "
                    f"before ({_marker_note(marker)}); parkgate does not start on a new empty store")
        return None
    # The header is NOT read here (header_problem, after SQLite refuses the file): closing any descriptor
    # of the database file drops every POSIX lock this process holds on it, SQLite's own included, and
    # a daemon opens further Stores beside its own (the chain sync thread, MQTT list commands). With its
    # locks gone, another process closing its connection checkpoints and deletes the WAL under the daemon:
    # lost writes and a malformed file.
    return None


def header_problem(store: Path) -> str | None:
    """Why ``store`` is not an SQLite file, from its first bytes; call only once SQLite has refused it
    (see preflight: reading the file drops this process's locks on it)."""
    try:
        with store.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError:
        return None
    if head != SQLITE_HEADER:
        return f"store {store} is not an SQLite database (its first bytes are {head[:16]!r})"
    return None


def _marker_note(marker: Path) -> str:
    try:
        created = json.loads(marker.read_text()).get("created_at", "?")
    except (OSError, ValueError, AttributeError):
        created = "?"
    return f"created {created}"


def mark_initialised(store: Path) -> None:
    """Write the marker beside ``store`` unless it is there (atomically; failures are left to the next
    start: a read-only directory is reported by the store itself)."""
    marker = marker_path(store)
    if marker.exists():
        return
    body = {"store": store.name, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "meaning": "a parkgate store was created here: a missing or empty store is an error, not a "
                       "first start. Delete this file only to start again with an empty store on purpose."}
    tmp = marker.with_name(marker.name + ".tmp")
    try:
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        os.replace(tmp, marker)
    except OSError:
        return


def quick_check(conn: sqlite3.Connection, full: bool = False) -> list[str]:
    """SQLite's ``quick_check`` (or ``integrity_check``) problems; empty when the file is sound."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}(20)")]
    except sqlite3.DatabaseError as exc:
        return [f"{pragma} could not run: {exc}"]
    return [] if rows == ["ok"] else rows


def stored_clock_floor(store: Path) -> tuple[int, str | None]:
    """The store's clock floor (``clock_floor``, edge.clock) read without changing the file, and why it
    could not be read: ``(0, None)`` when there is none to read (no store yet, an older schema without
    the table, no row), ``(0, reason)`` when the store is damaged, unreadable, or lost (its marker says one
    was created there)."""
    if (problem := preflight(store)) is not None:  # a lost, emptied or misplaced store included
        return 0, problem
    if not store.is_file():
        return 0, None
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return 0, f"store {store}: {exc}"
    try:
        row = conn.execute("SELECT floor_ms FROM clock_floor WHERE id = 1").fetchone()
        return (int(row[0]) if row else 0), None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0, None
        return 0, f"store {store}: {exc}"
    except sqlite3.Error as exc:
        return 0, f"store {store}: {exc}"
    finally:
        conn.close()


# -- check -----------------------------------------------------------------------------------------------

@dataclass
class CheckReport:
    store: Path
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(store: Path) -> CheckReport:
    """A full look at ``store`` without changing it: file, marker, header, integrity, foreign keys."""
    report = CheckReport(store)
    problem = preflight(store)
    if problem:
        report.problems.append(problem)
        return report
    if not store.exists():
        report.facts.append(f"{store} does not exist yet (no marker: the first start creates it)")
        return report
    report.facts.append(f"{store}: {store.stat().st_size} bytes; marker "
                        f"{'present' if marker_path(store).exists() else 'absent (written at next start)'}")
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        report.problems.append(f"cannot open {store}: {exc}")
        return report
    try:
        report.problems += quick_check(conn, full=True)
        if not report.problems:
            report.problems += [f"foreign key violation: {tuple(r)}"
                                for r in conn.execute("PRAGMA foreign_key_check").fetchmany(20)]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            report.facts.append(f"schema version {version}")
            for table in ("gate_events", "bookings", "outbox"):
                count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                report.facts.append(f"{table}: {count} rows")
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{store}: {exc}")
    finally:
        conn.close()
    return report


# -- backup ----------------------------------------------------------------------------------------------

def backup(store: Path, dest: Path) -> list[str]:
    """Copy ``store`` to ``dest`` (a new file, 0600) with SQLite's online backup API: consistent while the
    daemon writes. Returns the copy's quick_check problems (empty: good); raises OSError/sqlite3.Error, and
    then leaves no partial copy behind (a full disk must not leave a 0-byte "backup")."""
    if dest.exists():
        raise FileExistsError(f"{dest} exists; choose a new file name")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        return _backup_into(store, dest)
    except BaseException:
        remove_store_files(dest)
        raise


def _backup_into(store: Path, dest: Path) -> list[str]:
    src = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=256)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            problems = quick_check(dst)
        finally:
            dst.close()
    finally:
        src.close()
    fsync_file(dest)
    return problems


def prune_backups(directory: Path, store: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups ``<store>-<UTC time>`` (the names `parkgate store backup`
    gives) in ``directory``; other files are never touched. The deleted paths, oldest first."""
    pattern = re.compile(re.escape(store.name) + r"-\d{8}T\d{6}Z(-\d+)?")
    backups = sorted((p for p in directory.iterdir() if p.is_file() and pattern.fullmatch(p.name)),
                     key=lambda p: (p.stat().st_mtime, p.name))
    old = backups[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


# -- files: durable copies, replacing the store, clearing up ----------------------------------------------

def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable (best effort: some file systems refuse a directory fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def copy_durably(source: Path, dest: Path, mode: int = 0o600) -> None:
    """Copy ``source`` to ``dest`` (replaced if there) and fsync it; on any failure (a full disk) ``dest``
    is removed and the error raised."""
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def remove_store_files(path: Path) -> None:
    """Remove ``path`` and its -wal/-shm/-journal files (a partial copy or salvage), if there."""
    for suffix in ("", *_SIDE_FILES):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


# -- salvage ---------------------------------------------------------------------------------------------

@dataclass
class TableSalvage:
    table: str
    copied: int = 0
    lost: str = ""  # what could not be read, in words


def salvage(damaged: Path, new: Path, create_schema: Callable[[Path], None]) -> list[TableSalvage]:
    """Copy every readable row of ``damaged`` into ``new`` (created by ``create_schema(new)``, the
    current schema), table by table, skipping unreadable pages by rowid. Foreign keys are not enforced
    while copying (a booking whose rental event was lost is kept)."""
    create_schema(new)
    src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True, timeout=5)
    dst = sqlite3.connect(new, isolation_level=None)
    try:
        dst.execute("PRAGMA foreign_keys=OFF")
        tables = _tables(src)
        dst_tables = _tables(dst)
        results = []
        for name, sql in tables.items():
            if name not in dst_tables and sql:
                dst.execute(sql)  # a table of its own owner (e.g. the MQTT nonces)
                dst_tables[name] = sql
            results.append(_salvage_table(src, dst, name))
        return results
    finally:
        dst.close()
        src.close()


def _tables(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                            "AND name NOT LIKE 'sqlite_%' ORDER BY rootpage").fetchall()
    except sqlite3.DatabaseError:
        return {}
    return {str(name): str(sql or "") for name, sql in rows}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _salvage_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> TableSalvage:
    result = TableSalvage(table)
    try:
        columns = [c for c in _columns(src, table) if c in set(_columns(dst, table))]
    except sqlite3.DatabaseError as exc:
        result.lost = f"table unreadable: {exc}"
        return result
    cols = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT OR IGNORE INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(columns))})'
    dst.execute("BEGIN")
    try:
        for row in _readable_rows(src, table, cols, result):
            try:
                dst.execute(insert, row)
                result.copied += 1
            except sqlite3.IntegrityError as exc:  # a full disk or I/O error is raised, not "refused"
                result.lost = result.lost or f"rows refused by the schema: {exc}"
        dst.execute("COMMIT")
    except BaseException:
        if dst.in_transaction:
            dst.execute("ROLLBACK")
        raise
    return result


def _readable_rows(src: sqlite3.Connection, table: str, cols: str, result: TableSalvage) -> Iterator[tuple]:
    """Rows by rowid; an unreadable page is stepped over by probing ever further rowids."""
    try:
        src.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
    except sqlite3.DatabaseError:  # WITHOUT ROWID: all or nothing
        try:
            yield from src.execute(f'SELECT {cols} FROM "{table}"').fetchall()
        except sqlite3.DatabaseError as exc:
            result.lost = f"table unreadable: {exc}"
        return
    after, skipped = -(2**63), 0
    while True:
        try:
            row = src.execute(f'SELECT rowid, {cols} FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT 1',
                              (after,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
            for step in (2**k for k in range(0, 40)):
                try:
                    row = src.execute(f'SELECT rowid, {cols} FROM "{table}" WHERE rowid > ? ORDER BY rowid '
                                      "LIMIT 1", (after + step,)).fetchone()
                    skipped += 1
                    break
                except sqlite3.DatabaseError:
                    continue
            result.lost = f"unreadable pages skipped ({skipped} rowid range(s))"
        if row is None:
            return
        after = int(row[0])
        yield tuple(row[1:])


def aside_name(store: Path, what: str) -> Path:
    """``parkgate.sqlite.damaged-20261201T180000Z`` (a name that does not exist yet)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = store.with_name(f"{store.name}.{what}-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = store.with_name(f"{store.name}.{what}-{stamp}-{n}")
    return candidate


def move_aside(store: Path, what: str = "damaged") -> Path:
    """Rename ``store`` and its -wal/-shm/-journal files to ``<store>.<what>-<stamp>[...]``."""
    aside = aside_name(store, what)
    for suffix in _SIDE_FILES:
        side = store.with_name(store.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    if store.exists():
        os.replace(store, aside)
    return aside


def replace_store(store: Path, new: Path, what: str) -> Path | None:
    """Put ``new`` (complete and fsynced) in place of ``store``; the current file, if any, is kept as
    ``<store>.<what>-<stamp>`` with its -wal/-shm. The store's name is never missing: the old file is
    linked to its aside name before the new one replaces it. On failure everything is put back and the
    OSError raised. Returns the aside name (None: there was no store)."""
    if not store.exists():
        os.replace(new, store)
        fsync_dir(store.parent)
        return None
    aside = aside_name(store, what)
    try:
        os.link(store, aside)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        return _rename_and_replace(store, new, what)  # a file system without hard links
    moved: list[tuple[Path, Path]] = []
    try:
        for suffix in _SIDE_FILES:  # an old -wal must never be read into the new file
            side = store.with_name(store.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))
                moved.append((side, aside.with_name(aside.name + suffix)))
        os.replace(new, store)
    except OSError:
        for side, kept in moved:
            os.replace(kept, side)
        aside.unlink(missing_ok=True)
        raise
    fsync_dir(store.parent)
    return aside


def _rename_and_replace(store: Path, new: Path, what: str) -> Path:
    aside = move_aside(store, what)
    try:
        os.replace(new, store)
    except OSError:
        os.replace(aside, store)
        raise
    fsync_dir(store.parent)
    return aside
