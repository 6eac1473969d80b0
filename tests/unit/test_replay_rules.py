"""replay-rules.json and --ignore-field: loaded, merged, and a bad path refused before serving."""

from __future__ import annotations

import json

import pytest

from rrlab.replayer.rules import RULES_NAME, load_rules
from rrlab.rr.usage import UsageError


def test_rules_from_the_cassette_and_the_command_line_are_merged(tmp_path):
    rules = {"ignore_fields": ["amount", "properties.message_id"], "ignore_headers": ["trace"]}
    (tmp_path / RULES_NAME).write_text(json.dumps(rules))
    got = load_rules(tmp_path, ["items.id"], ["traceparent"])
    assert got == {
        "ignore_fields": ("amount", "properties.message_id", "items.id"),
        "ignore_headers": ("trace", "traceparent"),
        "exact_clock_fields": (),
    }
    (tmp_path / "plain").mkdir()  # a cassette without a rules file
    assert load_rules(tmp_path / "plain") == {
        "ignore_fields": (),
        "ignore_headers": (),
        "exact_clock_fields": (),
    }
    with pytest.raises(UsageError, match="no such cassette directory"):
        load_rules(tmp_path / "none")


def test_an_indexed_path_is_refused_naming_the_file_and_the_path_to_write(tmp_path):
    (tmp_path / RULES_NAME).write_text(json.dumps({"ignore_fields": ["items[0].id"]}))
    with pytest.raises(UsageError) as err:
        load_rules(tmp_path)
    assert str(tmp_path / RULES_NAME) in str(err.value) and "'items.id'" in str(err.value)


def test_a_bad_command_line_path_is_refused_naming_the_flag(tmp_path):
    with pytest.raises(UsageError, match="--ignore-field: ignore path 'a..b'"):
        load_rules(tmp_path, ["a..b"])


def test_exact_clock_fields_are_read_and_their_paths_checked(tmp_path):
    (tmp_path / RULES_NAME).write_text(json.dumps({"exact_clock_fields": ["properties.timestamp"]}))
    assert load_rules(tmp_path)["exact_clock_fields"] == ("properties.timestamp",)
    (tmp_path / RULES_NAME).write_text(json.dumps({"exact_clock_fields": ["ts[0]"]}))
    with pytest.raises(UsageError, match="'ts'"):
        load_rules(tmp_path)
