"""Helpers for the operator CLI and booking service tests: a lot set up with `parkgate lot` on the
session's real anvil (a fresh contract per module), keystores for the operator, an owner and a renter,
and the booking service (edge/tools/booking.py: a real uvicorn subprocess on a free loopback port)."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from edge.booking.client import new_request
from edge.chain.keystore import create_keystore
from edge.cli import main as parkgate
from edge.tools.anvil import Anvil, dev_account
from edge.tools.booking import BookingServiceProcess

LOT = "LOT-NORD-1"
PLATE = "B-AB 1234"
PRICE_PER_HOUR = 10**15
HOUR = 3600
PASSWORD = "test-only-password"
ATTESTATION = "0x" + "ab" * 32  # the hash of a verifier's evidence (`owner verify` requires one)


@dataclass
class Keys:
    """Keystore files (cheap KDF: tests only) and one password file for all of them."""

    directory: Path
    password_file: Path
    files: dict[str, Path] = field(default_factory=dict)

    def add(self, name: str, account: LocalAccount) -> Path:
        path = self.directory / f"{name}.json"
        create_keystore(path, PASSWORD, account.key, kdf="pbkdf2", iterations=2048)
        self.files[name] = path
        return path

    def flags(self, name: str) -> list[str]:
        return ["--keystore", str(self.files[name]), "--password-file", str(self.password_file)]


def make_keys(directory: Path) -> Keys:
    directory.mkdir(parents=True, exist_ok=True)
    password = directory / "password"
    password.write_text(PASSWORD + "\n")
    keys = Keys(directory, password)
    for name, index in (("operator", 0), ("owner", 1), ("renter", 2)):
        keys.add(name, dev_account(index))
    return keys


def lot_cli(*args: str) -> tuple[int, dict | list | None, str]:
    """Run `parkgate lot ... --json` in this process; returns (exit code, parsed stdout, stderr). A usage
    error (argparse exits 2, naming the option) is returned as its exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = parkgate(["lot", *args, "--json"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, (json.loads(out.getvalue()) if out.getvalue().strip() else None), err.getvalue()


def lot_process(*args: str) -> tuple[int, dict | list | None, str]:
    """`parkgate lot ... --json` as the operator runs it: a subprocess of the installed entry point."""
    result = subprocess.run([sys.executable, "-m", "edge.cli", "lot", *args, "--json"], capture_output=True,
                            text=True, timeout=120, check=False)
    return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else None), result.stderr


@dataclass
class LotWorld:
    """A contract deployed and a lot set up through `parkgate lot` (module-scoped)."""

    w3: Web3
    rpc: str
    contract: str
    keys: Keys
    plate_key_file: Path
    plate_key: bytes
    space_id: int
    rental_id: int
    rental_start: int
    rental_end: int

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def common(self) -> list[str]:
        return ["--rpc", self.rpc, "--contract", self.contract]

    def approved_space(self, location: str) -> tuple[str, dict]:
        """A new space of the owner at ``location``, approved by the operator: its id and what
        `lot space approve` printed."""
        code, space, err = lot_cli("space", "add", "--lot", LOT, "--location", location, *self.common(),
                                   *self.keys.flags("owner"))
        assert code == 0, err
        space_id = str(space["space_id"])
        code, approved, err = lot_cli("space", "approve", "--space", space_id, *self.common(),
                                      *self.keys.flags("operator"))
        assert code == 0, err
        return space_id, approved

    def listing(self, space_id: str) -> tuple[int, int]:
        """A 4-hour listing of ``space_id`` from an hour ahead at 7 wei an hour: its rental id and start."""
        start = self.now() + HOUR
        code, listed, err = lot_cli("rental", "add", "--space", space_id, "--start", str(start), "--end",
                                    str(start + 4 * HOUR), "--price-per-hour-wei", "7", *self.common(),
                                    *self.keys.flags("owner"))
        assert code == 0, err
        return listed["rental_id"], start


def set_up_lot(anvil: Anvil, directory: Path) -> LotWorld:
    """Deploy, register the lot, verify the owner, register a space and list it: all with the CLI."""
    w3 = anvil.web3()
    keys = make_keys(directory / "keys")
    code, out, err = lot_cli("deploy", "--rpc", anvil.url, *keys.flags("operator"))
    assert code == 0, err
    common = ["--rpc", anvil.url, "--contract", out["contract"]]
    for args in (["register", "--lot", LOT, "--geohash", "u33dc0"],
                 ["owner", "verify", "--address", dev_account(1).address, "--attestation", ATTESTATION]):
        code, _, err = lot_cli(*args, *common, *keys.flags("operator"))
        assert code == 0, err
    code, space, err = lot_cli("space", "add", "--lot", LOT, "--location", "L-1/B17", *common,
                               *keys.flags("owner"))
    assert code == 0, err
    code, _, err = lot_cli("space", "approve", "--space", str(space["space_id"]), *common,
                           *keys.flags("operator"))
    assert code == 0, err
    start = int(w3.eth.get_block("latest")["timestamp"]) + 600
    code, rental, err = lot_cli("rental", "add", "--space", str(space["space_id"]), "--start", str(start),
                                "--end", str(start + 8 * HOUR), "--price-per-hour-wei", str(PRICE_PER_HOUR),
                                *common, *keys.flags("owner"))
    assert code == 0, err
    plate_key = secrets.token_bytes(32)
    plate_key_file = directory / "plate-key"
    plate_key_file.write_text(plate_key.hex() + "\n")
    return LotWorld(w3, anvil.url, out["contract"], keys, plate_key_file, plate_key, space["space_id"],
                    rental["rental_id"], start, start + 8 * HOUR)


def snapshot(w3: Web3) -> str:
    return str(w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(w3: Web3, taken: str) -> bool:
    return w3.provider.make_request("evm_revert", [taken])["result"] is True  # type: ignore[arg-type]


def mine(w3: Web3, blocks: int) -> None:
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def service_process(world: LotWorld, log: Path, *extra: str) -> BookingServiceProcess:
    """The booking service of ``world``'s lot (German plate layouts)."""
    return BookingServiceProcess(world.rpc, world.contract, LOT, world.plate_key_file, log, "de", extra)


def signed_request(world: LotWorld, account: LocalAccount, plate: str = PLATE, *,
                   window: tuple[int, int, int] | None = None, expires_in: int = 300) -> dict[str, str]:
    """The body a renter's app posts: the request text signed with the renter's account."""
    return new_request(account, LOT, world.contract, 31337, plate, window, expires_in)
