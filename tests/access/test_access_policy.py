"""Policy built from config values: defaults, list entries, clear errors."""

import pytest

from edge.access.plates import DEFAULT_TABLE
from edge.access.policy import AntiPassback, Override, PolicyError, policy_from_mapping

COMMITMENT = "0x" + "ab" * 32


def test_defaults() -> None:
    policy = policy_from_mapping({"lot_id": "lot-1"})
    assert policy.anti_passback is AntiPassback.HARD and policy.override is Override.NONE
    assert policy.capacity is None and policy.confusions is DEFAULT_TABLE
    assert policy.grace_before_s == 900 and policy.max_plate_distance == 1.0


def test_lists_take_plates_and_commitments() -> None:
    policy = policy_from_mapping({"lot_id": "L", "allow": ["ab-12 cd", "0x" + "AB" * 32],
                                  "deny": ["zz 99"], "confusions": [["A", "4", 0.4]], "capacity": 10,
                                  "anti_passback": "soft", "override": "closed"})
    assert policy.allow == {"AB12CD", COMMITMENT}
    assert policy.deny == {"ZZ99"}
    assert policy.confusions.alternatives["A"] == (("4", 0.4),)
    assert (policy.capacity, policy.anti_passback) == (10, AntiPassback.SOFT)
    assert policy.override is Override.CLOSED


@pytest.mark.parametrize("values, fragment", [
    ({}, "lot_id"),
    ({"lot_id": "L", "grace_before_s": -1}, "grace_before_s: -1 is out of range"),
    ({"lot_id": "L", "grace_after_s": 1.5}, "grace_after_s: 1.5 is not an integer"),
    ({"lot_id": "L", "max_plate_distance": "1"}, "max_plate_distance: '1' is not a number"),
    ({"lot_id": "L", "capacity": True}, "capacity: True"),
    ({"lot_id": "L", "anti_passback": "strict"}, "anti_passback: 'strict' is not one of off, soft, hard"),
    ({"lot_id": "L", "override": 1}, "override: 1 is not one of"),
    ({"lot_id": "L", "deny": "AB12"}, "deny: expected a list"),
    ({"lot_id": "L", "deny": ["0x12"]}, "not 0x + 64 hex"),
    ({"lot_id": "L", "allow": ["A#"]}, "allow: plate 'A#'"),
    ({"lot_id": "L", "allow": [12]}, "must be a string"),
    ({"lot_id": "L", "confusions": [["A", "B"]]}, "confusions:"),
    ({"lot_id": "L", "capcity": 3}, "unknown access keys ['capcity']"),
])
def test_bad_values_are_named(values: dict, fragment: str) -> None:
    with pytest.raises(PolicyError) as err:
        policy_from_mapping(values)
    assert fragment in str(err.value)
