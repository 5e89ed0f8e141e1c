"""`parkgate doctor` checks of the chain sync: the gateway key is registered for this lot on the
contract, and holds enough to upload (found by ``edge.doctor.discover_checks``)."""

from __future__ import annotations

from edge.config import Config
from edge.doctor import CheckResult, register_check

# Records the gateway should be able to pay for before the check calls its balance low: a busy day's
# backlog (1,000 records) at chain.max_fee_gwei.
RESERVE_RECORDS = 1_000


@register_check("chain gateway")
def check_chain_gateway(config: Config) -> CheckResult:
    """Registration (``gatewayOf(lot, key)``) and balance of the gateway key, read from the node."""
    chain = config.chain
    if not chain.enabled:
        return CheckResult.skip("chain.enabled is false")
    if chain.keystore is None:
        return CheckResult.fail("chain.keystore is not set", "create one: parkgate chain keystore new ...")
    from edge.chain.contract import RentalClient
    from edge.chain.keystore import keystore_address
    from edge.chain.sync import GAS_PER_RECORD, connect
    from edge.chain.syncplan import backlog_cost_wei, chain_lot_code, gwei, lot_bytes

    address = keystore_address(chain.keystore)
    w3 = connect(chain.rpc_url, timeout_s=3.0)
    try:
        client = RentalClient(w3, chain.contract_address)
        registered = client.is_gateway(lot_bytes(config.gateway.lot_id), address)
        balance = int(w3.eth.get_balance(address))
    except Exception as exc:  # noqa: BLE001 - node down, wrong address: one FAIL row
        return CheckResult.fail(f"cannot ask the node at {chain.rpc_url}: {type(exc).__name__}: {exc}",
                                "check chain.rpc_url and chain.contract_address")
    lot = chain_lot_code(config.gateway.lot_id)
    if not registered:
        return CheckResult.fail(f"{address} is not a gateway of lot {lot} on {chain.contract_address}",
                                f"the lot admin calls setGateway({lot}, {address}, true)")
    reserve = backlog_cost_wei(RESERVE_RECORDS, GAS_PER_RECORD, gwei(chain.max_fee_gwei), chain.batch_size)
    if balance < reserve:
        return CheckResult.fail(f"{address} holds {balance} wei, less than {RESERVE_RECORDS} records cost at "
                                f"chain.max_fee_gwei ({reserve} wei)", f"send funds to {address}")
    return CheckResult.ok(f"{address} is a gateway of lot {lot}; balance {balance} wei")
