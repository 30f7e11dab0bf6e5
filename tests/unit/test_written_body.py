"""A write's answer body (``api.data.written_body``) is byte for byte ``json.dumps`` of
``{"key": ..., "version": ..., "acks": ...}``: clients parse it as JSON and the contract
(API.md) shows it in that form."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dynamopy.api.data import written_body


@settings(max_examples=300, deadline=None)
@given(key=st.text(min_size=1, max_size=40), version=st.integers(0, 2**63 - 1),
       acks=st.integers(0, 9))
def test_written_body_is_json_dumps_of_the_answer(key, version, acks):
    expected = json.dumps({"key": key, "version": version, "acks": acks}).encode()
    assert written_body(key, version, acks) == expected
    assert json.loads(written_body(key, version, acks)) == {"key": key, "version": version,
                                                          "acks": acks}


def test_keys_that_need_escaping():
    for key in ['a"b', "a\\b", "line\nbreak", "tab\t", "\x00", "caf\u00e9", "\U0001f600", "/x/y"]:
        assert written_body(key, 7, 2) == json.dumps({"key": key, "version": 7,
                                                      "acks": 2}).encode()
