"""Manual operation of the gates, for operators: the local control socket (``edge.daemon.control``) and
signed remote commands (MQTT). Each open, hold or release is audited: who, why, the result, and what the
lane's camera reads at that moment with its evidence (``manual_actions``; an open is also a ``manual``
pass of the lane machine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import replace
from typing import Any

from edge.clock import TrustedClock
from edge.config import Config
from edge.daemon import control
from edge.daemon.camera import LaneCamera
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import WATCH_QUEUE, LaneShell
from edge.daemon.supervisor import LaneSupervisor
from edge.identity import mask_plate_or_none
from edge.lanes.machine import ManualOpen
from edge.store import ManualActionRow

log = logging.getLogger(__name__)
AUDIT_FRAMES = 3  # frames the camera reads for the audit of a manual action (at most the lane's burst)


class ManualDesk:
    """Answers the control socket (``operate``, ``watch``) and verified remote commands
    (``remote_command``, from the MQTT bridge's command thread) on the daemon's ``loop``."""

    def __init__(self, cfg: Config, gatekeeper: Gatekeeper, clock: TrustedClock, lanes: LaneSupervisor,
                 cameras: Mapping[str, LaneCamera], stop: asyncio.Event,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.gatekeeper = gatekeeper
        self.clock = clock
        self.lanes = lanes
        self.cameras = cameras
        self._stop = stop
        self._loop = loop
        self._last_audit: dict[str, asyncio.Future[None]] = {}  # per lane: the newest action's audit written

    def remote_command(self, command: Any) -> Any:
        """A verified remote command (the bridge's command thread, never paho's network thread: a list
        command waits for the store there): hand a gate action to the loop, audited like a local one."""
        from edge.mqtt import CommandOutcome
        from edge.mqtt.commands import LIST_ACTIONS

        if command.action in LIST_ACTIONS:  # the whole gateway: the store's lists, read before each decision
            from edge.daemon.lists import apply_list_command

            return CommandOutcome(*apply_list_command(self.cfg.store_path, command.action, command.args or {},
                                                      f"mqtt:{command.nonce}"))
        shell = self.lanes.shell(command.lane)
        if shell is None or command.action not in control.GATE_ACTIONS:
            return CommandOutcome(False, f"no lane {command.lane!r} or action {command.action!r} unsupported")
        asyncio.run_coroutine_threadsafe(
            self.manual(shell, command.action, "mqtt", f"mqtt:{command.nonce}", "signed remote command"),
            self._loop)
        return CommandOutcome(True, f"{command.action} queued")

    async def operate(self, request: control.Request, peer: control.Peer) -> dict[str, Any]:
        shell = self.lanes.shell(request.lane)
        if shell is None or request.lane in self.lanes.errors:
            why = self.lanes.errors.get(str(request.lane), "not connected yet")
            return {"ok": False, "error": f"lane {request.lane} is not serving: {why}"}
        if request.action == "status":
            try:
                status = await shell.driver.status()
            except Exception as exc:  # noqa: BLE001 - the controller did not answer: say so
                return {"ok": False, "error": f"lane {request.lane}: status failed: {exc}"}
            return {"ok": True, "lane": request.lane, "held": shell.held, "status": {
                "position": status.position.name, "presence": status.presence, "safety": status.safety,
                "held": status.held, "faults": int(status.faults), "opens": status.opens}}
        return await self.manual(shell, request.action, "socket", request.who(peer), request.reason)

    async def manual(self, shell: LaneShell, action: str, source: str, who: str, reason: str
                     ) -> dict[str, Any]:
        """Open, hold or release one lane's gate for an operator, then audit it.

        A lane's actions are audited in the order they came, dated when they came: each audit waits for
        its camera read, which may take longer for one action than for the next (a hold then its release,
        two signed MQTT commands a second apart, were audited release first under load)."""
        lane = shell.config.lane_id
        at_ms = self.clock.now_ms()
        previous = self._last_audit.get(lane)
        written = self._last_audit[lane] = asyncio.get_running_loop().create_future()
        log.warning("manual %s on lane %s by %s: %s", action, lane, who, reason)
        try:
            try:
                ok, result = await self._act(shell, action, who)
            except Exception as exc:  # noqa: BLE001 - refused or unreachable: audited, reported
                ok, result = False, f"failed: {exc}"
            audit_id, read = await self._audit(shell, ManualActionRow(
                at_ms, lane, action, source, who, reason, result), previous)
        finally:
            written.set_result(None)
            if self._last_audit.get(lane) is written:
                del self._last_audit[lane]
        answer = {"ok": ok, "lane": lane, "action": action, "result": result, "audit_id": audit_id,
                  "read": read}
        if audit_id is None and self.gatekeeper.audits:
            answer["audit"] = (f"waits in memory: {self.gatekeeper.store_error}; written when the store "
                               "takes writes again")
        return answer

    async def _act(self, shell: LaneShell, action: str, who: str) -> tuple[bool, str]:
        if action == "hold":
            await shell.hold()
            return True, "held open"
        if action == "release":
            await shell.release()
            return True, "released"
        opens = shell.stats.opens
        shell.feed(ManualOpen(who))
        deadline = time.monotonic() + shell.config.ack_timeout_ms / 1000
        while shell.stats.opens == opens and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if shell.stats.opens > opens:
            return True, "opened"
        return False, f"not opened (lane {shell.state.phase})"

    async def _audit(self, shell: LaneShell, action: ManualActionRow, previous: asyncio.Future[None] | None
                     ) -> tuple[int | None, dict[str, Any] | None]:
        """Record the ``action`` with what the lane's camera reads now (waiting for it at most the lane's
        burst timeout: a hung plate read must not keep the audit, or the operator's answer, waiting), after
        the lane's ``previous`` action's audit; never raises. A store that refuses writes keeps the record
        in memory (``Gatekeeper.audit``): the act is not refused, since an operator is then the only way
        through gates that stay shut."""
        lane_cfg = shell.config.lane
        plate = confidence = snapshot = None
        wait_s = shell.config.burst_timeout_ms / 1000
        try:
            camera = self.cameras[lane_cfg.name]
            reading = asyncio.to_thread(camera.burst, 0, min(AUDIT_FRAMES, lane_cfg.camera.burst_frames))
            burst = await asyncio.wait_for(reading, wait_s)
            best = max((r for r in burst.reads if r.text), key=lambda r: r.confidence, default=None)
            if best is not None:
                plate = mask_plate_or_none(best.text)
                confidence = round(min(1.0, max(0.0, best.confidence)), 3)
            snapshot = burst.snapshot
        except TimeoutError:
            log.warning("lane %s: no camera read for the manual %s within %.1f s: audited without one",
                        lane_cfg.name, action.action, wait_s)
        except Exception as exc:  # noqa: BLE001 - no camera read: the operation is audited all the same
            log.warning("lane %s: no camera read for the manual %s: %s", lane_cfg.name, action.action, exc)
        row = replace(action, plate_masked=plate, confidence=confidence,
                      evidence_path=snapshot.path if snapshot else None,
                      evidence_sha256=snapshot.sha256 if snapshot else None)
        if previous is not None:
            await asyncio.shield(previous)  # set in a finally: never left pending
        try:
            audit_id = self.gatekeeper.audit(row)
        except Exception:  # noqa: BLE001 - the gate already acted; say loudly that the audit is missing
            log.exception("lane %s: manual %s by %s NOT audited", lane_cfg.name, action.action,
                          action.operator)
            return None, None
        return audit_id, {"plate_masked": plate, "confidence": confidence,
                          "evidence": snapshot.path if snapshot else None}

    async def watch(self, lane: str | None) -> AsyncGenerator[dict[str, Any], None]:
        """Input changes of one lane (or all) as they come, after a status line per lane."""
        shells = [s for s in self.lanes.shells if lane is None or s.config.lane_id == lane]
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(WATCH_QUEUE)
        for shell in shells:
            shell.watchers.add(queue)
        try:
            for shell in shells:
                with contextlib.suppress(Exception):
                    status = await shell.driver.status()
                    yield {"at_ms": shell.now_ms(), "lane": shell.config.lane_id, "kind": "status",
                           "position": status.position.name, "presence": int(status.presence),
                           "safety": int(status.safety), "held": int(status.held or shell.held),
                           "faults": int(status.faults)}
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    yield await asyncio.wait_for(queue.get(), 1.0)
        finally:
            for shell in shells:
                shell.watchers.discard(queue)
