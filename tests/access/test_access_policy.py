"""Policy built from the validated config: defaults, list entries; bad entries are config errors."""

import re

import pytest

from edge.access.plates import DEFAULT_TABLE
from edge.access.policy import AntiPassback, Override, policy_from_config
from edge.config import ConfigError, parse_config

CONFIG = """
[gateway]
lot_id = "LOT-7"

[vision]
min_confidence = 0.7

[policy]
grace_before_s = 60
anti_passback = "soft"
capacity = 10
allow_list = ["ab-12 cd", "0xABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"]
deny_list = ["zz 99"]
confusions = [{a = "A", b = "4", cost = 0.4}]
"""


def test_defaults() -> None:
    policy = policy_from_config(parse_config(""))
    assert policy.anti_passback is AntiPassback.HARD and policy.override is Override.NONE
    assert policy.config.capacity is None and policy.confusions is DEFAULT_TABLE
    assert policy.config.grace_before_s == 900 and policy.config.max_plate_distance == 1.0
    assert policy.lot_id == "LOT-1"


def test_values_from_config() -> None:
    policy = policy_from_config(parse_config(CONFIG), Override.CLOSED)
    assert policy.allow == {"AB12CD", "0x" + "ab" * 32}
    assert policy.deny == {"ZZ99"}
    assert policy.confusions.alternatives["A"] == (("4", 0.4),)
    assert (policy.lot_id, policy.config.grace_before_s, policy.min_confidence) == ("LOT-7", 60, 0.7)
    assert (policy.config.capacity, policy.anti_passback) == (10, AntiPassback.SOFT)
    assert policy.override is Override.CLOSED


@pytest.mark.parametrize("line, fragment", [
    ('deny_list = ["0x12"]', "policy.deny_list[0]: entry '0x12' looks like a commitment but is not 0x + 64"),
    ('allow_list = ["AB", "A#"]', "policy.allow_list[1]: plate has character U+0023"),
    ('confusions = [{a = "A", b = "A", cost = 0.5}]', "policy.confusions[0]: confusion pair ('A', 'A')"),
    ('confusions = [{a = "A", b = "-", cost = 0.5}]', "policy.confusions[0]: confusion pair ('A', '-')"),
])
def test_bad_entries_are_named_by_the_config(line: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("[policy]\n" + line, "test.toml")
    assert fragment in str(err.value)
    assert "A#" not in str(err.value)  # a list entry may be a plate: never repeated in the error


def test_store_list_entries_join_the_config_lists() -> None:
    from edge.identity import list_entry_key

    base = policy_from_config(parse_config('[policy]\nallow_list = ["AB-123"]\n'))
    live = base.with_listed([list_entry_key("cd 456")], [list_entry_key("0x" + "AB" * 32)])
    assert live.allow == frozenset({"AB123", "CD456"}) and live.deny == frozenset({"0x" + "ab" * 32})
    assert base.allow == frozenset({"AB123"}) and base.deny == frozenset()  # the config's policy is unchanged
    assert live.config is base.config and live.lot_id == base.lot_id


@pytest.mark.parametrize("entry, message", [
    ("0x12", "looks like a commitment but is not 0x + 64 hex digits"),
    ("AB!1", "allowed: A-Z 0-9"),
    ("", "plate is empty"),
])
def test_a_bad_list_entry_is_refused_without_echoing_a_plate(entry: str, message: str) -> None:
    from edge.identity import list_entry_key

    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        list_entry_key(entry)
    assert "AB!1" not in str(caught.value)
