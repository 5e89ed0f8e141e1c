"""The committed artifacts in contracts/build match a fresh solcjs compile; toolchain errors are clear."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge.chain import build
from edge.chain.contract import load_artifact
from edge.tools.anvil import AnvilError, anvil_binary

# Events the chain-sync filters by lot with eth_getLogs: lotId must stay indexed.
LOT_INDEXED_EVENTS = ("RentalEventCreated", "FirstAssociation", "RentalRequested", "SecondAssociation",
                      "RentalEventCancelled", "BookingCancelled", "BookingExpired", "CheckedOut",
                      "Settled")


def test_committed_artifacts_match_a_fresh_compile(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m edge.chain.build --check` really recompiles with the pinned solcjs and diffs."""
    assert build.main(["--check"]) == 0, "contracts/build is stale: run `make contracts` and commit"
    assert "up to date" in capsys.readouterr().out


def test_stale_check_detects_tampered_and_missing_artifacts(tmp_path: Path) -> None:
    shutil.copytree(build.BUILD_DIR, tmp_path / "build")
    artifact = tmp_path / "build" / "ParkgateRental.json"
    data = json.loads(artifact.read_text())
    data["bytecode"] = data["bytecode"][:-2] + ("00" if not data["bytecode"].endswith("00") else "01")
    artifact.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (tmp_path / "build" / "ReentrancyAttacker.json").unlink()
    assert build.stale_files(tmp_path / "build") == ["ParkgateRental.json", "ReentrancyAttacker.json"]


def test_build_info_names_pinned_compiler_and_every_source() -> None:
    info = json.loads((build.BUILD_DIR / build.BUILD_INFO_NAME).read_text())
    pinned = json.loads((build.CONTRACTS_DIR / "package.json").read_text())["dependencies"]["solc"]
    assert info["compiler"].startswith(f"solcjs {pinned}+")
    assert info["sources"] == sorted(build.source_files())
    assert info["settings"] == build.load_settings()


def test_lot_id_is_indexed_on_every_event_the_sync_filters() -> None:
    events = {e["name"]: e for e in load_artifact()["abi"] if e["type"] == "event"}
    for name in LOT_INDEXED_EVENTS:
        lot = [i for i in events[name]["inputs"] if i["name"] == "lotId"]
        assert lot and lot[0]["indexed"], f"{name}.lotId must be indexed"


def test_missing_node_modules_gives_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "NODE_MODULES", tmp_path / "node_modules")
    with pytest.raises(build.BuildError, match="npm ci"):
        build.require_toolchain()
    with pytest.raises(AnvilError, match="make test"):
        anvil_binary(tmp_path / "node_modules")


def test_missing_artifact_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make contracts"):
        load_artifact("ParkgateRental", tmp_path)

