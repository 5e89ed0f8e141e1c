"""`parkgate doctor` checks of the chain sync, each against the real thing (found by
``edge.doctor.discover_checks``): the keystore decrypts with its password; the RPC node answers with the
configured chain id and holds code at the contract address; the gateway key is registered for this lot
and holds enough to upload the backlog.

web3 and eth-account load inside the checks: with the chain off they cost nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edge.config import Config, ConfigError
from edge.doctor import CheckResult, register_check
from edge.errors import ParkgateError

# Records the gateway should be able to pay for beyond its backlog before the check calls its balance
# low: a busy day's records (1,000) at chain.max_fee_gwei.
RESERVE_RECORDS = 1_000
RPC_TIMEOUT_S = 3.0


def _chain_off(config: Config) -> CheckResult | None:
    return None if config.chain.enabled else CheckResult.skip("chain.enabled is false")


@register_check("keystore")
def check_keystore(config: Config) -> CheckResult:
    """The gateway's keystore decrypts with the password in chain.password_file."""
    if (off := _chain_off(config)) is not None:
        return off
    from edge.chain.keystore import KeystoreError, keystore_address, load_account, read_password

    chain = config.chain
    if chain.keystore is None:
        return CheckResult.fail("chain.keystore is not set", "create one: parkgate chain keystore new "
                                "--keystore /etc/parkgate/gateway-key.json --password-file FILE")
    try:
        keystore_address(chain.keystore)
    except KeystoreError as exc:  # missing, unreadable, not JSON: the file, not its password
        return CheckResult.fail(str(exc), "point chain.keystore at the gateway's keystore file, or restore "
                                "it from its backup; a new one (parkgate chain keystore new) is a new "
                                "address the lot admin must authorise (docs/install.md step 4)")
    try:
        account = load_account(chain.keystore, read_password(chain.password_file))
    except (ConfigError, KeystoreError) as exc:
        return CheckResult.fail(str(exc), f"put the keystore's password in chain.password_file "
                                f"({chain.password_file}), or make a new keystore (parkgate chain keystore "
                                "new)")
    return CheckResult.ok(f"{chain.keystore} decrypts to {account.address}")


@register_check("chain node")
def check_chain_node(config: Config) -> CheckResult:
    """The RPC node answers, on the configured chain, and the contract address holds code."""
    if (off := _chain_off(config)) is not None:
        return off
    from edge.chain.sync import connect

    chain = config.chain
    w3 = connect(chain.rpc_url, timeout_s=RPC_TIMEOUT_S)
    try:
        chain_id = int(w3.eth.chain_id)
        head = int(w3.eth.block_number)
        code = bytes(w3.eth.get_code(w3.to_checksum_address(chain.contract_address)))
    except Exception as exc:  # noqa: BLE001 - refused, timed out, not JSON-RPC: one FAIL row
        return CheckResult.fail(f"no answer from the RPC node at {chain.rpc_url}: {type(exc).__name__}: "
                                f"{_short(exc)}", "start the node or fix chain.rpc_url (and the network path "
                                "to it)")
    if chain_id != chain.chain_id:
        return CheckResult.fail(f"{chain.rpc_url} is chain {chain_id}, the config says chain.chain_id = "
                                f"{chain.chain_id}", "point chain.rpc_url at a node of the right chain, or "
                                "fix chain.chain_id")
    if not code:
        return CheckResult.fail(f"no contract code at {chain.contract_address} on chain {chain_id} "
                                f"(block {head})", "set chain.contract_address to the deployed rental "
                                "contract (ask the lot admin), on this chain")
    return CheckResult.ok(f"{chain.rpc_url}: chain {chain_id}, block {head}, contract code at "
                          f"{chain.contract_address} ({len(code)} bytes)")


@register_check("chain gateway")
def check_chain_gateway(config: Config) -> CheckResult:
    """Registration (``gatewayOf(lot, key)``) of the gateway key and its balance against the backlog of
    records waiting in the store, read from the node."""
    if (off := _chain_off(config)) is not None:
        return off
    chain = config.chain
    if chain.keystore is None:
        return CheckResult.fail("chain.keystore is not set", "create one: parkgate chain keystore new ...")
    from web3 import Web3

    from edge.chain.contract import RentalClient
    from edge.chain.keystore import KeystoreError, keystore_address
    from edge.chain.sync import GAS_PER_RECORD, connect
    from edge.chain.syncplan import backlog_cost_wei, chain_lot_code, gwei, lot_bytes

    try:
        address = keystore_address(chain.keystore)
    except KeystoreError as exc:
        return CheckResult.fail(f"cannot tell the gateway's address: {exc} (see the keystore check)",
                                "fix chain.keystore first: the keystore check says how")
    w3 = connect(chain.rpc_url, timeout_s=RPC_TIMEOUT_S)
    try:
        client = RentalClient(w3, chain.contract_address, log_window_blocks=chain.log_window_blocks)
        registered = client.is_gateway(lot_bytes(config.gateway.lot_id), address)
        balance = int(w3.eth.get_balance(Web3.to_checksum_address(address)))
    except Exception as exc:  # noqa: BLE001 - node down, wrong address: one FAIL row
        return CheckResult.fail(f"cannot ask the node at {chain.rpc_url}: {type(exc).__name__}: "
                                f"{_short(exc)}", "check chain.rpc_url and chain.contract_address")
    lot = chain_lot_code(config.gateway.lot_id)
    if not registered:
        return CheckResult.fail(f"{address} is not a gateway of lot {lot} on {chain.contract_address}",
                                f"the lot admin authorises it: parkgate lot gateway add --lot {lot} "
                                f"--address {address} (setGateway; docs/install.md step 4)")
    backlog = _backlog(config)
    records = (backlog or 0) + RESERVE_RECORDS
    reserve = backlog_cost_wei(records, GAS_PER_RECORD, gwei(chain.max_fee_gwei), chain.batch_size)
    return _funds(f"{address} is a gateway of lot {lot}", address, balance, reserve, backlog)


def _funds(registered: str, address: str, balance: int, reserve: int, backlog: int | None) -> CheckResult:
    """The balance against ``reserve``: the cost of the backlog (None: the store does not open) and
    RESERVE_RECORDS more."""
    unknown = "unknown: the store does not open, see the store check"
    if balance < reserve:
        waiting = f"the {backlog} records waiting" if backlog is not None else f"the backlog ({unknown})"
        return CheckResult.fail(f"{address} holds {balance} wei, less than {waiting} plus "
                                f"{RESERVE_RECORDS} more cost at chain.max_fee_gwei ({reserve} wei)",
                                f"send funds to {address}")
    paid = (f"the backlog ({backlog} records) and {RESERVE_RECORDS} more" if backlog is not None else
            f"{RESERVE_RECORDS} records; the backlog is {unknown}")
    return CheckResult.ok(f"{registered}; balance {balance} wei pays for {paid}")


def _backlog(config: Config) -> int | None:
    """Gate records waiting for the chain in the store (0 when there is no store yet; None when it does
    not open: the store check says why)."""
    from edge.store import Store

    if not config.store_path.exists():
        return 0
    try:
        with Store(config.store_path, busy_timeout_ms=config.store.busy_timeout_ms) as store:
            counts = store.counts()
    except (ParkgateError, sqlite3.Error):
        return None
    return counts.get("outbox.chain.pending", 0) + counts.get("outbox.chain.in_flight", 0)


def _short(exc: Any, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
