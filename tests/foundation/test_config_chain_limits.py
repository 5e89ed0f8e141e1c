"""Config rules that keep the gateway within what the chain side can do (ops review s13, finding 5; contract
review): only an HTTP(S) RPC URL (the sync speaks HTTP only), and with the chain on no admission earlier than
the rental contract's GRACE_PERIOD before a booking's start."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.chain.windows import GRACE_PERIOD_S
from edge.config import CONTRACT_GRACE_PERIOD_S, ConfigError, config_from_mapping

REPO = Path(__file__).resolve().parents[2]
CHAIN_ON = {"enabled": True, "contract_address": "0x" + "11" * 20, "keystore": "/k.json",
            "password_file": "/pw", "plate_key_file": "/pk"}


def error(data: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        config_from_mapping(data)
    return str(raised.value)


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8546", "wss://node.example/ws"])
def test_a_websocket_rpc_url_is_refused_saying_why(url: str) -> None:
    message = error({"chain": {"rpc_url": url}})
    assert f"chain.rpc_url: {url!r} is not allowed; allowed: an http:// or https:// URL" in message
    assert "speaks JSON-RPC over HTTP only" in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "https://node.example/rpc"])
def test_http_rpc_urls_are_accepted(url: str) -> None:
    assert config_from_mapping({"chain": {"rpc_url": url}}).chain.rpc_url == url


def test_grace_before_beyond_the_contracts_grace_period_is_refused_with_the_chain_on() -> None:
    message = error({"chain": CHAIN_ON, "policy": {"grace_before_s": 901}})
    assert "policy.grace_before_s: 901 is above the rental contract's GRACE_PERIOD (900 s)" in message
    assert "allowed: 0..900" in message
    limit = config_from_mapping({"chain": CHAIN_ON, "policy": {"grace_before_s": 900}})
    assert limit.policy.grace_before_s == 900


def test_grace_before_is_free_without_the_chain() -> None:
    assert config_from_mapping({"policy": {"grace_before_s": 3600}}).policy.grace_before_s == 3600


def test_the_limit_is_the_contracts() -> None:
    source = (REPO / "contracts" / "src" / "ParkgateRental.sol").read_text()
    minutes = re.search(r"GRACE_PERIOD\s*=\s*(\d+)\s+minutes", source)
    assert minutes is not None
    assert CONTRACT_GRACE_PERIOD_S == GRACE_PERIOD_S == int(minutes.group(1)) * 60
