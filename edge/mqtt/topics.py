"""Topic names under ``<prefix>/<gateway_id>/`` and Home Assistant discovery messages (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from edge import __version__
from edge.config import RESERVED_LANE_NAMES

TOPIC_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ONLINE, OFFLINE = "online", "offline"


def check_topic_part(name: str, value: str) -> str:
    """``value`` if it is safe inside a topic level (no ``/``, ``+``, ``#``); ValueError otherwise."""
    if not isinstance(value, str) or not TOPIC_PART_RE.match(value):
        raise ValueError(f"{name} {value!r} cannot be used in MQTT topics: use 1-64 characters of "
                         "A-Z a-z 0-9 _ . -")
    return value


@dataclass(frozen=True)
class Topics:
    prefix: str
    gateway_id: str

    def __post_init__(self) -> None:
        for part in self.prefix.split("/"):
            check_topic_part("topic prefix part", part)
        check_topic_part("gateway id", self.gateway_id)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def lane_state(self, lane: str) -> str:
        return f"{self.base}/lanes/{lane}/state"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def reads(self) -> str:
        return f"{self.base}/reads"

    @property
    def alerts(self) -> str:
        return f"{self.base}/alerts"

    def command(self, lane: str) -> str:
        return f"{self.base}/cmd/{lane}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    @property
    def command_result(self) -> str:
        return f"{self.base}/cmd/result"

    def lane_of_command_topic(self, topic: str) -> str | None:
        """The lane level of ``<base>/cmd/<lane>``, or None for any other topic (``cmd/result``)."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        lane = topic[len(head):]
        return None if lane in RESERVED_LANE_NAMES or "/" in lane else lane


def _device(topics: Topics) -> dict:
    return {"identifiers": [f"parkgate_{topics.gateway_id}"], "name": f"parkgate {topics.gateway_id}",
            "manufacturer": "parkgate", "model": "edge gateway", "sw_version": __version__}


def discovery_messages(topics: Topics, lanes: Iterable[str], discovery_prefix: str = "homeassistant",
                       open_button_topic: str | None = None) -> list[tuple[str, bytes]]:
    """Retained Home Assistant discovery configs as (topic, payload), all in one device.

    Gateway: connectivity (``binary_sensor`` on the availability topic), vehicles inside (with the
    capacity as an attribute), upload backlog and chain link, read from the retained status JSON. Per
    lane, from its retained lane-state JSON: the lane's phase (``sensor``, the whole JSON as attributes),
    the gate's position and the last decision (``sensor``s), the gate controller link and the camera
    (``binary_sensor``s). Home Assistant
    cannot sign commands, so an open ``button`` per lane is announced only when ``open_button_topic``
    (``mqtt.ha_open_button_topic``) names a topic where a signing bridge listens: a press publishes the
    lane id there and the bridge must publish a signed ``cmd/<lane>``.
    """
    gw, device = topics.gateway_id, _device(topics)
    avail = {"availability_topic": topics.availability, "payload_available": ONLINE,
             "payload_not_available": OFFLINE}

    def entity(component: str, object_id: str, name: str, **config: object) -> tuple[str, dict]:
        body = {"name": name, "unique_id": f"parkgate_{gw}_{object_id}", "device": device, **config}
        return f"{discovery_prefix}/{component}/parkgate_{gw}/{object_id}/config", body

    status = {"state_topic": topics.status, **avail}
    messages = [
        entity("binary_sensor", "connectivity", "Connectivity", device_class="connectivity",
               state_topic=topics.availability, payload_on=ONLINE, payload_off=OFFLINE),
        entity("sensor", "inside", "Vehicles inside", value_template="{{ value_json.inside }}",
               unit_of_measurement="vehicles", state_class="measurement", json_attributes_topic=topics.status,
               json_attributes_template="{{ {'capacity': value_json.capacity} | tojson }}", **status),
        entity("sensor", "backlog", "Upload backlog", unit_of_measurement="records",
               state_class="measurement", value_template="{{ value_json.backlog.values() | sum }}", **status),
        entity("sensor", "chain", "Chain link", value_template="{{ value_json.chain }}", **status),
    ]
    for lane in lanes:
        state = {"state_topic": topics.lane_state(lane), **avail}
        messages += [
            entity("sensor", f"{lane}_state", f"Lane {lane}", value_template="{{ value_json.state }}",
                   json_attributes_topic=topics.lane_state(lane), **state),
            entity("sensor", f"{lane}_gate_position", f"Lane {lane} gate",
                   value_template="{{ value_json.gate or 'unknown' }}", **state),
            entity("sensor", f"{lane}_decision", f"Lane {lane} last decision",
                   value_template="{{ value_json.last_decision or 'none' }}", **state),
            entity("binary_sensor", f"{lane}_gate", f"Lane {lane} gate controller",
                   device_class="connectivity", value_template="{{ 'ON' if value_json.link_up else 'OFF' }}",
                   **state),
            entity("binary_sensor", f"{lane}_camera", f"Lane {lane} camera", device_class="connectivity",
                   value_template="{{ 'ON' if value_json.camera == 'ok' else 'OFF' }}", **state),
        ]
        if open_button_topic is not None:
            messages.append(entity("button", f"{lane}_open", f"Open lane {lane}",
                                   command_topic=open_button_topic, payload_press=lane, **avail))
    return [(topic, json.dumps(body, sort_keys=True).encode()) for topic, body in messages]
