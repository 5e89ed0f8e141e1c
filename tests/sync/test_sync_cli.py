"""`parkgate chain keystore|sync|status` and the keystore's error handling (never echoing secrets)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sync_world import PASSWORD, World, record_denied, store_path, write_config

from edge.chain.keystore import KeystoreError, create_keystore, keystore_address, load_account
from edge.cli import main
from edge.store import Store
from edge.tools.anvil import Anvil

KEY = "0x" + "11" * 32


def test_keystore_new_show_address_and_decrypt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    password = tmp_path / "pw"
    password.write_text("s3cret-pass\n")
    key_file = tmp_path / "key.hex"
    key_file.write_text(KEY + "\n")
    keystore = tmp_path / "gw.json"
    assert main(["chain", "keystore", "new", "--keystore", str(keystore), "--password-file", str(password),
                 "--private-key-file", str(key_file)]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert "s3cret-pass" not in out and KEY[2:] not in out and KEY[2:] not in keystore.read_text()
    assert main(["chain", "keystore", "show-address", "--keystore", str(keystore)]) == 0
    address = capsys.readouterr().out.strip()
    assert address.lower() == load_account(keystore, "s3cret-pass").address.lower() in out.lower()
    # never overwrite a key
    again = ["chain", "keystore", "new", "--keystore", str(keystore), "--password-file", str(password)]
    assert main(again) == 1
    assert "already exists" in capsys.readouterr().err


def test_wrong_password_and_damaged_keystore_name_the_file_not_the_secret(tmp_path: Path) -> None:
    keystore = tmp_path / "gw.json"
    create_keystore(keystore, "right", KEY, kdf="pbkdf2", iterations=2)
    with pytest.raises(KeystoreError, match="wrong password") as wrong:
        load_account(keystore, "wrong-password-xyz")
    assert "wrong-password-xyz" not in str(wrong.value) and str(keystore) in str(wrong.value)
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    with pytest.raises(KeystoreError, match="not a readable JSON keystore"):
        load_account(damaged, "x")
    with pytest.raises(KeystoreError, match="not a readable JSON keystore"):
        keystore_address(damaged)


def test_sync_once_then_status(world: World, anvil: Anvil, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, world, anvil.url, batch_size=50)
    with Store(store_path(tmp_path)) as store:
        record_denied(store, 7, world.now())
    assert main(["chain", "status", "--config", str(config), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["backlog"] == 7 and before["head_block"] == world.w3.eth.block_number
    assert main(["chain", "sync", "--config", str(config), "--once"]) == 0
    health = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert health["backlog"] == 0 and health["uploaded_total"] == 7
    assert main(["chain", "status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "backlog: 0" in text and "done: 7" in text and PASSWORD not in text


def test_sync_refuses_a_wrong_password_and_status_reports_a_dead_node(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, world, "http://127.0.0.1:9", batch_size=50)
    (tmp_path / "keystore-password").write_text("not the password\n")
    assert main(["chain", "sync", "--config", str(config), "--once"]) == 1
    err = capsys.readouterr().err
    assert "wrong password" in err and "not the password" not in err
    assert main(["chain", "status", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["head_block"].startswith("unreachable")


def test_doctor_checks_the_gateway_keys_registration_and_balance(world: World, anvil: Anvil,
                                                                 tmp_path: Path) -> None:
    from edge.chain.doctor_checks import check_chain_gateway
    from edge.chain.syncplan import lot_bytes
    from edge.config import load_config
    from edge.doctor import Status

    cfg = load_config(write_config(tmp_path, world, anvil.url))
    ok = check_chain_gateway(cfg)
    assert ok.status is Status.OK and world.gateway.address in ok.detail and "balance" in ok.detail
    world.admin.set_gateway(lot_bytes("LOT-1"), world.gateway.address, False)
    unregistered = check_chain_gateway(cfg)
    assert unregistered.status is Status.FAIL and "setGateway" in unregistered.fix
    world.admin.set_gateway(lot_bytes("LOT-1"), world.gateway.address, True)
    world.w3.provider.make_request("anvil_setBalance", [world.gateway.address, "0x10"])
    poor = check_chain_gateway(cfg)
    assert poor.status is Status.FAIL and "holds 16 wei" in poor.detail and "send funds" in poor.fix
    world.w3.provider.make_request("anvil_setBalance", [world.gateway.address, hex(10**22)])
