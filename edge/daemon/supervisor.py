"""The lane supervisor: starts, restarts and degrades the lanes, each on its own.

Each lane is one asyncio task that connects its gate driver (retrying every :data:`CONNECT_RETRY_S`
while the controller is unplugged: other lanes never wait for it), runs its :class:`LaneShell` and, if
the lane's loop fails, closes the driver and starts again after :data:`LANE_RESTART_S`. Lanes wired to
one Modbus port share one client (:class:`firmware_bridge.modbus.ModbusBus`). ``errors`` names each lane
that does not serve and why (the status's ``degraded``); ``serving`` is set once the first lane serves,
``all_tried`` once every lane's first connection attempt has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from edge import notify
from edge.config import LaneConfig, relay_map_options
from edge.daemon.lane import LaneShell
from firmware_bridge.driver import connect_driver
from firmware_bridge.gate import GateDriver
from firmware_bridge.modbus import ModbusBus

log = logging.getLogger(__name__)
CONNECT_RETRY_S = 1.0
LANE_RESTART_S = 2.0  # a lane whose loop failed starts again after this, on its own

MakeShell = Callable[[LaneConfig, GateDriver], LaneShell]
Alert = Callable[[str, str, str], None]


class LaneSupervisor:
    """``make_shell(lane, driver)`` builds a lane's shell on its first connection (a reconnection gives the
    same shell its new driver); ``alert(lane, code, detail)`` reports unreachable gates and failed lanes."""

    def __init__(self, lanes: Sequence[LaneConfig], make_shell: MakeShell, alert: Alert,
                 stop: asyncio.Event) -> None:
        self.configs = tuple(lanes)
        self._make_shell = make_shell
        self._alert = alert
        self._stop = stop
        self.shells: list[LaneShell] = []  # in the order the lanes first served
        self.drivers: dict[str, GateDriver] = {}  # lane name -> its connected driver
        self.errors: dict[str, str] = {lane.name: "starting" for lane in lanes}  # not serving: why
        self.serving = asyncio.Event()
        self.all_tried = asyncio.Event()
        self.modbus_bus = ModbusBus()
        self._tried: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """One task per lane: each connects, serves, fails and reconnects on its own."""
        self._tasks = [asyncio.create_task(self._serve(lane), name=f"lane-{lane.name}")
                       for lane in self.configs]

    def shell(self, lane: str | None) -> LaneShell | None:
        """The shell of ``lane`` once it has served (``errors`` says whether it serves now)."""
        return next((shell for shell in self.shells if shell.config.lane_id == lane), None)

    async def stop(self) -> None:
        """Stop every lane, then close each gate (unless a vehicle is under it) and let go of it."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        for shell in self.shells:
            await shell.aclose()
        for driver in list(self.drivers.values()):
            await close_driver(driver)

    async def _serve(self, lane_cfg: LaneConfig) -> None:
        """Until the daemon stops: connect the lane's gate, run the lane; if its loop fails, close the
        driver and start again (the other lanes never wait for this one)."""
        name = lane_cfg.name
        shell: LaneShell | None = None
        while (driver := await self._connect(lane_cfg)) is not None:
            self._tried_once(name)
            self.drivers[name] = driver
            if shell is None:
                shell = self._make_shell(lane_cfg, driver)
                self.shells.append(shell)
            shell.driver, shell.held = driver, False  # a new connection holds nothing
            self.errors.pop(name, None)
            self.serving.set()
            log.info("lane %s: serving (gate %s on %s)", name, lane_cfg.gate.driver, lane_cfg.gate.port)
            try:
                await shell.run()
            except Exception as exc:  # noqa: BLE001 - this lane only: report, restart it, the others go on
                log.exception("lane %s: stopped by an error; restarting in %.0f s", name, LANE_RESTART_S)
                self.errors[name] = f"lane failed: {exc!r}"
                self._alert(name, "lane_failed", repr(exc))
            await shell.aclose()
            await close_driver(self.drivers.pop(name))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), LANE_RESTART_S)

    async def _connect(self, lane_cfg: LaneConfig) -> GateDriver | None:
        """The lane's gate driver, retrying until it connects; None when the daemon stops first."""
        gate = lane_cfg.gate
        options: dict[str, object] = dict(relay_map_options(gate)) if gate.driver == "modbus-rtu" else {}
        while not self._stop.is_set():
            try:
                return await connect_driver(gate.driver, gate.port, gate.baudrate, bus=self.modbus_bus,
                                            **options)
            except Exception as exc:  # noqa: BLE001 - unplugged: keep trying, say so; other lanes go on
                self._tried_once(lane_cfg.name)
                why = f"gate not reachable: {exc}"
                if self.errors.get(lane_cfg.name) != why:  # once per new reason, not per retry
                    log.warning("lane %s: %s; retrying", lane_cfg.name, why)
                    self._alert(lane_cfg.name, "gate_unreachable", str(exc))
                self.errors[lane_cfg.name] = why
                if not self.serving.is_set():
                    # Not a failed start: systemd must not kill and restart us while an installer plugs it in.
                    notify.extend_start_timeout(CONNECT_RETRY_S * 3,
                                                f"waiting for gate {gate.port} of lane {lane_cfg.name}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), CONNECT_RETRY_S)
        return None

    def _tried_once(self, lane: str) -> None:
        self._tried.add(lane)
        if len(self._tried) == len(self.configs):
            self.all_tried.set()


async def close_driver(driver: GateDriver) -> None:
    """Close the gate (refused while a vehicle is under it: fine, the pulse ends by itself), let go."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(driver.close(), 2.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(driver.aclose(), 2.0)
