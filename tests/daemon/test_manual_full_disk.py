"""An operator's open and hold on a store that refuses writes (review of 2026-12-03): a full disk keeps the
automatic gates shut, so the operator is the way out; the act goes through and its audit, and the manual
pass, wait in memory until the store takes writes again: nothing is lost.

A real SQLite store on a real full file system (a small tmpfs filled to the last byte: ``full_disk``), the
real Gatekeeper, LaneShell and ManualDesk; the gate is an in-memory driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from full_disk import fill, tmpfs

from edge.access import Policy
from edge.access.types import Decision, Direction, Reason
from edge.clock import TrustedClock
from edge.config import LaneConfig
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import LaneShell
from edge.daemon.manual import ManualDesk
from edge.lanes.machine import BurstDone, LaneSettings, PresenceOn, SafetyOff, SafetyOn
from edge.store import Store
from edge.vision.types import PlateRead
from firmware_bridge.gate import GateStatus, InputChange
from firmware_bridge.messages import Fault, Position

OPERATOR = "alice (uid 1000, pid 4242)"


class Gate:
    """A controller that does what it is told, and notes it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def open_pulse(self, ms: int) -> None:
        self.calls.append("open_pulse")

    async def hold_open(self, watchdog_ms: int) -> None:
        self.calls.append("hold_open")

    async def release(self) -> None:
        self.calls.append("release")

    async def close(self) -> None:
        self.calls.append("close")

    async def status(self) -> GateStatus:
        return GateStatus(Position.CLOSED, False, False, "hold_open" in self.calls, Fault.NONE, None)

    async def events(self) -> AsyncIterator[InputChange]:
        await asyncio.Event().wait()
        yield InputChange(Fault.NONE, 0)  # type: ignore[arg-type]  # never reached


class Lanes:
    """The part of the lane supervisor the desk asks."""

    def __init__(self, shell: LaneShell) -> None:
        self.shells, self.errors = [shell], {}

    def shell(self, lane: str | None) -> LaneShell:
        return self.shells[0]


def gatekeeper(kind: type[Gatekeeper], store: Store) -> Gatekeeper:
    """The lanes' port to ``store`` for a lot with no chain and no broker."""
    return kind(store, Policy("LOT-1"), lambda plate: "0x" + "00" * 32, chain_on=False, mqtt_on=False)


def test_open_and_hold_on_a_full_store_act_and_are_audited_when_space_returns(tmp_path: Path) -> None:
    async def scenario(state: Path) -> None:
        store = Store(state / "parkgate.sqlite")
        keeper = gatekeeper(Gatekeeper, store)
        gate = Gate()
        shell = LaneShell(LaneSettings(LaneConfig(name="exit-1", direction="exit")), gate,  # type: ignore[arg-type]
                          lambda n, frames: BurstDone(n, ()), keeper, lambda *alert: None)
        desk = ManualDesk(None, keeper, TrustedClock(), Lanes(shell), {}, asyncio.Event(),  # type: ignore[arg-type]
                          asyncio.get_running_loop())
        filler = fill(state)
        answers: list[dict[str, Any]] = []
        answers.append(await desk.manual(shell, "open", "socket", OPERATOR, "trapped visitor"))
        shell.feed(SafetyOn())
        shell.feed(SafetyOff())  # the car went through: its pass waits in memory too
        answers.append(await desk.manual(shell, "hold", "socket", OPERATOR, "evacuation"))
        assert [a["result"] for a in answers] == ["opened", "held open"]
        assert gate.calls[:2] == ["open_pulse", "hold_open"] and shell.held
        assert all(a["ok"] and a["audit_id"] is None and "waits in memory" in a["audit"] for a in answers)
        assert keeper.store_error is not None and len(keeper.audits) == 2 and len(keeper.pending) == 1
        assert store.manual_actions() == [] and store.gate_events(after_seq=0, limit=10) == []

        filler.unlink()
        assert keeper.flush() == 1
        audited = [row for _, row in reversed(store.manual_actions())]
        assert [(r.action, r.operator, r.result) for r in audited] == [
            ("open", OPERATOR, "opened"), ("hold", OPERATOR, "held open")]
        kinds = [row.kind for _, row in store.gate_events(after_seq=0, limit=10)]
        assert kinds == ["manual"] and keeper.store_error is None and not keeper.waiting()
        answer = await desk.manual(shell, "release", "socket", OPERATOR, "over")
        assert answer["audit_id"] is not None and "audit" not in answer
        await shell.aclose()
        store.close()

    with tmpfs(tmp_path / "state", "4m") as state:
        asyncio.run(scenario(state))


class Granting(Gatekeeper):
    """The store's gatekeeper, deciding every car in (its journal and records are the real ones)."""

    def decide(self, read: PlateRead, direction: Direction, rules: object = None) -> Decision:  # type: ignore[override]
        return Decision(True, Reason.BOOKING_VALID, None, "b1")


def test_an_automatic_open_on_a_full_store_stays_shut(tmp_path: Path) -> None:
    """Only an operator's open goes without its journal row; a granted car's does not."""
    async def scenario(state: Path) -> None:
        store = Store(state / "parkgate.sqlite")
        keeper = gatekeeper(Granting, store)
        gate = Gate()
        read = PlateRead("AB123CD", 0.95, (0.95,) * 7)
        shell = LaneShell(LaneSettings(LaneConfig(name="entry-1", direction="entry")), gate,  # type: ignore[arg-type]
                          lambda n, frames: BurstDone(n, (read,) * frames), keeper, lambda *alert: None)
        fill(state)
        shell.feed(PresenceOn())
        for _ in range(100):
            if shell.state.decision is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert shell.state.decision is not None and shell.state.decision.allow
        assert "open_pulse" not in gate.calls, "no open without a durable record"
        assert keeper.store_error is not None
        await shell.aclose()
        store.close()

    with tmpfs(tmp_path / "state", "4m") as state:
        asyncio.run(scenario(state))
