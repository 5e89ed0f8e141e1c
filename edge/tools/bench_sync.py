"""Benchmark: drain a gate-record backlog to a real anvil, batched vs one transaction per record.

    python -m edge.tools.bench_sync [--records 10000] [--batch 200] [--naive 500]

Both runs use the real sync service (store file, signing, nonce handling, receipts) against one
anvil in automine mode. The naive run uses batch size 1 on a smaller sample (``--naive``); its
records/s and gas/record are measured, and its time for the full backlog is extrapolated (and
labelled so). Gas is the sum of ``gasUsed`` over the mined transactions' receipts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from edge.chain.contract import RentalClient, deploy
from edge.chain.sync import SyncService, SyncTuning
from edge.chain.syncplan import lot_bytes
from edge.config import ChainConfig
from edge.store import Store
from edge.store.rows import GateEventRow, new_event_id
from edge.tools.anvil import Anvil, AnvilConfig, dev_account

LOT = "LOT-BENCH"


@dataclass(frozen=True)
class DrainResult:
    records: int
    batch_size: int
    seconds: float
    gas: int
    transactions: int

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    @property
    def gas_per_record(self) -> float:
        return self.gas / self.records


def _backlog(store: Store, count: int, now_s: int) -> None:
    with store.transaction():
        for _ in range(count):
            store.record_gate_event(GateEventRow(event_id=new_event_id(), lane="bench", direction="entry",
                                              kind="denied", reason="bench", occurred_at_ms=now_s * 1000),
                                    destinations=("chain",))


def drain(w3: Web3, contract: RentalClient, workdir: Path, records: int, batch_size: int) -> DrainResult:
    """Queue ``records`` denied attempts in a fresh store, then time the service draining them."""
    with Store(workdir / f"bench-{batch_size}-{records}.sqlite") as store:
        _backlog(store, records, int(w3.eth.get_block("latest")["timestamp"]))
        chain = ChainConfig(enabled=True, contract_address=contract.address, chain_id=w3.eth.chain_id,
                            confirmations=0, batch_size=batch_size)
        service = SyncService(w3, store, dev_account(5), chain, LOT, SyncTuning(receipt_wait_s=10.0))
        started = time.perf_counter()
        service.run_until_idle()
        seconds = time.perf_counter() - started
        hashes = [h for (h,) in store.conn.execute("SELECT tx_hash FROM chain_txs WHERE status = 'mined'")]
    gas = sum(int(w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in hashes)
    return DrainResult(records, batch_size, seconds, gas, len(hashes))


def _deploy(w3: Web3) -> RentalClient:
    admin = deploy(w3, w3.eth.accounts[0])
    admin.register_lot(lot_bytes(LOT), "u33dc0")
    admin.set_gateway(lot_bytes(LOT), dev_account(5).address)
    return admin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.bench_sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="backlog size for the batched run")
    parser.add_argument("--batch", type=int, default=200, help="records per transaction (batched run)")
    parser.add_argument("--naive", type=int, default=500, help="sample size for one transaction per record")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parkgate-bench-sync-") as tmp, \
            Anvil(AnvilConfig(), log_path=Path(tmp) / "anvil.log") as node:
        w3 = node.web3()
        contract = _deploy(w3)
        batched = drain(w3, contract, Path(tmp), args.records, args.batch)
        naive = drain(w3, contract, Path(tmp), args.naive, 1)
    print(f"backlog drain against anvil (automine), {args.records} records")
    print(f"{'mode':<28}{'records':>9}{'txs':>7}{'seconds':>10}{'records/s':>11}{'gas/record':>12}")
    for name, r in ((f"batched ({batched.batch_size}/tx)", batched), ("naive (1 tx/record)", naive)):
        print(f"{name:<28}{r.records:>9}{r.transactions:>7}{r.seconds:>10.2f}{r.per_second:>11.1f}"
              f"{r.gas_per_record:>12.0f}")
    print(f"naive time for {args.records} records, extrapolated from {args.naive}: "
          f"{args.records / naive.per_second:.1f} s (measured batched: {batched.seconds:.1f} s); "
          f"gas saved per record: {naive.gas_per_record - batched.gas_per_record:.0f} "
          f"({1 - batched.gas_per_record / naive.gas_per_record:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
