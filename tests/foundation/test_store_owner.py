"""The store stays the daemon user's (ops review s13, finding 1): `parkgate store recover` run as root (as the
docs once implied) gives the new store the old one's owner, group and mode; run as a user who does not own
it, it is refused; and the daemon refuses at start a store it cannot write (SQLite would open it read-only
without a word) with an error naming the file, its owner and the fix.

Real files and real users: root runs the commands, uid 65534 (nobody) stands in for the `parkgate` user
(setpriv drops to it). Without root these tests are skipped."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store import Store

SERVICE_UID = SERVICE_GID = 65534
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="needs root and setpriv (changes owners, runs as another user)")


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory the service uid can reach (pytest's tmp_path is root's, 0700), with a state dir owned by
    the service uid and a config naming it; removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="parkgate-owner-"))
    try:
        top.chmod(0o755)
        state = top / "state"
        state.mkdir(mode=0o750)
        os.chown(state, SERVICE_UID, SERVICE_GID)
        (top / "parkgate.toml").write_text(f'[gateway]\nstate_dir = "{state}"\n')
        (top / "parkgate.toml").chmod(0o644)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def as_service(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command as the service uid (no supplementary groups), like the unit runs the daemon."""
    return subprocess.run(["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_GID}", "--clear-groups",
                           *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"})


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def service_store(site: Path, rows: int = 20) -> Path:
    """The store as the daemon makes it: created by the service uid (mode 0600, as under UMask=0077)."""
    path = site / "state" / "parkgate.sqlite"
    made = as_service(sys.executable, "-c", "import os, sys; os.umask(0o077); from edge.store import Store; "
                      f"s = Store({str(path)!r}); s.close()")
    assert made.returncode == 0, made.stderr
    conn = sqlite3.connect(path)  # root writes some rows (SQLite keeps its journal files the file owner's)
    actions = [(1_800_000_000_000 + i, "in-1", "open", "socket", "op", "r", "ok") for i in range(rows)]
    conn.executemany("INSERT INTO manual_actions (at_ms, lane, action, source, operator, reason, result) "
                     "VALUES (?,?,?,?,?,?,?)", actions)
    conn.commit()
    conn.close()
    return path


def service_can_write(path: Path) -> subprocess.CompletedProcess[str]:
    """A real write into the store by the service uid (what the daemon does at every pass)."""
    write = "UPDATE clock_floor SET floor_ms = floor_ms + 1"
    return as_service(sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(path)!r}); "
                      f"c.execute({write!r}); c.commit()")


def assert_owned_like_the_daemon(path: Path) -> None:
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (SERVICE_UID, SERVICE_GID, 0o600), path
    wrote = service_can_write(path)
    assert wrote.returncode == 0, wrote.stderr


def test_recover_from_a_backup_as_root_keeps_the_store_the_daemons(site: Path) -> None:
    store = service_store(site)
    config = str(site / "parkgate.toml")
    backup = site / "backup.sqlite"
    assert cli("store", "backup", "--config", config, "--out", str(backup)).returncode == 0
    restored = cli("store", "recover", "--config", config, "--from", str(backup))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert_owned_like_the_daemon(store)
    with Store(store) as opened:
        assert opened.conn.execute("SELECT count(*) FROM manual_actions").fetchone()[0] == 20


def test_salvage_as_root_keeps_the_store_the_daemons(site: Path) -> None:
    store = service_store(site)
    salvaged = cli("store", "recover", "--config", str(site / "parkgate.toml"))
    assert salvaged.returncode == 0, salvaged.stdout + salvaged.stderr
    assert "manual_actions: 20 rows copied" in salvaged.stdout
    assert_owned_like_the_daemon(store)
    assert not list(store.parent.glob("*.salvage-*")), "no partial salvage left"


def test_a_root_backup_in_the_state_dir_is_the_daemon_users(site: Path) -> None:
    service_store(site)
    made = cli("store", "backup", "--config", str(site / "parkgate.toml"))
    assert made.returncode == 0, made.stdout + made.stderr
    folder = site / "state" / "backups"
    (copy,) = folder.iterdir()
    for path, mode in ((folder, 0o700), (copy, 0o600)):
        st = path.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (SERVICE_UID, SERVICE_GID, mode), path


def test_recover_by_a_user_who_does_not_own_the_store_is_refused(site: Path) -> None:
    state = site / "state"
    store = service_store(site)
    for path in (state, *state.iterdir()):
        os.chown(path, 0, 0)  # root's state dir: the service uid is "another user" here
    state.chmod(0o755)
    store.chmod(0o644)
    refused = as_service(sys.executable, "-m", "edge.cli", "store", "recover", "--config",
                         str(site / "parkgate.toml"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{store} belongs to uid 0" in refused.stdout and "sudo -u parkgate" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    assert sorted(p.name for p in state.iterdir()) == ["parkgate.sqlite", "parkgate.sqlite.initialised"]


def test_the_daemon_refuses_a_store_it_cannot_write(site: Path) -> None:
    """What a salvage run as root used to leave: root:root 0644. SQLite opens it read-only, silently."""
    store = service_store(site)
    os.chown(store, 0, 0)
    store.chmod(0o644)
    run = as_service(sys.executable, "-m", "edge.cli", "run", "--config", str(site / "parkgate.toml"))
    assert run.returncode == 2, run.stdout + run.stderr
    line = next(line for line in run.stdout.splitlines() if "cannot start" in line)
    assert f"store {store} cannot be written by" in line and "uid 65534" in line, line
    assert "it belongs to root:root, mode 0644" in line and "chown" in line and str(store) in line, line
    assert "Traceback" not in run.stdout + run.stderr
    os.chown(store, SERVICE_UID, SERVICE_GID)  # the fix it names
    assert service_can_write(store).returncode == 0
