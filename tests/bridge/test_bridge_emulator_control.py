"""The emulator's control channel as the harnesses share it: several threads on one handle."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bridge_harness import Emulator, running_emulator


def _states(emulator: Emulator, rounds: int) -> list[dict]:
    return [emulator.state() for _ in range(rounds)]


def _unplugs(emulator: Emulator, rounds: int) -> list[dict]:
    return [emulator.command("unplug 0") for _ in range(rounds)]


def test_each_thread_gets_the_reply_to_its_own_command(tmp_path: Path) -> None:
    """`make chaos` pulls a lane's cable from one thread while the lane's driver polls the state from
    another (a crossed reply once ended a chaos run with KeyError 'open_commands')."""
    with running_emulator(tmp_path) as emulator, ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(_states, emulator, 300), pool.submit(_unplugs, emulator, 300),
                pool.submit(_states, emulator, 300), pool.submit(_unplugs, emulator, 300)]
        states = jobs[0].result() + jobs[2].result()
        unplugs = jobs[1].result() + jobs[3].result()
    assert all("open_commands" in reply for reply in states)
    assert all(reply == {"unplugged": True, "seconds": 0.0} for reply in unplugs)
