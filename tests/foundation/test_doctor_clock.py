"""`parkgate doctor`'s clock check tells the truth about what it compared the wall clock with: the store's
newest time when the store can be read; only the build date, said as such (a WARN), when the store is there
but damaged (before, a damaged store gave an OK "not behind the newest time this gateway has seen").
Real SQLite files."""

from __future__ import annotations

import time
from pathlib import Path

from edge import doctor
from edge.config import Config, config_from_mapping
from edge.doctor import Status, run_checks
from edge.store import Store
from edge.store.integrity import marker_path

DAY_MS = 86_400_000


def clock_result(state: Path) -> doctor.CheckResult:
    cfg: Config = config_from_mapping({"gateway": {"state_dir": str(state)}})
    return dict(run_checks(cfg, {"clock": doctor.registered_checks()["clock"]}))["clock"]


def test_a_sound_store_is_the_floor_the_wall_clock_is_checked_against(tmp_path: Path) -> None:
    cfg = config_from_mapping({"gateway": {"state_dir": str(tmp_path)}})
    with Store(cfg.store_path) as store:
        store.raise_clock_floor(int(time.time() * 1000))
    result = clock_result(tmp_path)
    assert result.status is Status.OK and "newest time this gateway has seen" in result.detail, result
    with Store(cfg.store_path) as store:
        store.raise_clock_floor(int(time.time() * 1000) + 3 * DAY_MS)  # the store has seen a later time
    result = clock_result(tmp_path)
    assert result.status is Status.FAIL and "behind the newest time" in result.detail and result.fix, result


def test_no_store_yet_leaves_the_build_date_and_passes(tmp_path: Path) -> None:
    result = clock_result(tmp_path)
    assert result.status is Status.OK, result


def test_a_damaged_store_is_named_and_the_check_does_not_claim_to_have_read_it(tmp_path: Path) -> None:
    store_path = config_from_mapping({"gateway": {"state_dir": str(tmp_path)}}).store_path
    store_path.write_bytes(b"this is not sqlite at all\n" * 100)
    result = clock_result(tmp_path)
    assert result.status is Status.WARN, result
    assert "not behind this build's date" in result.detail and "could not be read" in result.detail, result
    assert str(store_path) in result.detail and "store check" in result.fix, result
    assert "newest time this gateway has seen" not in result.detail, result


def test_a_lost_store_is_named_too(tmp_path: Path) -> None:
    cfg = config_from_mapping({"gateway": {"state_dir": str(tmp_path)}})
    with Store(cfg.store_path) as store:
        store.raise_clock_floor(int(time.time() * 1000))
    kept = marker_path(cfg.store_path)
    assert kept.exists()  # the store leaves a marker beside it, so that its loss is noticed
    for leftover in tmp_path.glob(cfg.store_path.name + "*"):
        if leftover != kept:
            leftover.unlink()
    result = clock_result(tmp_path)
    assert result.status is Status.WARN and "is missing" in result.detail, (result, list(tmp_path.iterdir()))
