"""Signed MQTT list commands (``list-add``/``list-remove``, edge.mqtt.commands) applied to the store's
allow/deny lists; the lanes read the lists before each decision, so the change applies from the next car.

Runs on the MQTT bridge's command thread (not paho's network thread, which must go on sending keep-alive
pings while this waits for a locked store) with its own short-lived store connection (SQLite WAL: the
event loop's connection goes on reading and writing meanwhile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.store import ListEntry, Store


def apply_list_command(store_path: Path, action: str, args: dict[str, Any], source: str) -> tuple[bool, str]:
    """(done, what happened) for a verified list command; ``args`` were checked by verify_command."""
    list_name, entry = args["list"], args["entry"]
    with Store(store_path) as store:
        if action == "list-add":
            store.put_list_entry(ListEntry(list_name, entry, args.get("from"), args.get("until"), "", source))
            return True, f"{list_name} list: added {entry[:10]}..."
        removed = store.remove_list_entry(list_name, entry)
    return removed, f"{list_name} list: {'removed' if removed else 'no entry'} {entry[:10]}..."
