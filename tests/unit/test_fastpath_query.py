"""The /kv query parser's fast path gives exactly what ``urllib.parse.parse_qsl`` gives."""

from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from dynamopy.api.fastpath import parse_query


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="rw=&;%+2aéx1 ", max_size=12))
def test_parse_query_is_parse_qsl_with_blank_values(text):
    raw = text.encode("latin-1")
    assert parse_query(raw) == parse_qsl(text, keep_blank_values=True)


def test_the_usual_queries():
    assert parse_query(b"") == []
    assert parse_query(b"r=2") == [("r", "2")]
    assert parse_query(b"w=2&strict=true&&w") == [("w", "2"), ("strict", "true"), ("w", "")]
    assert parse_query(b"r=%32&x=a+b") == [("r", "2"), ("x", "a b")]
