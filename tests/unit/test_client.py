"""dynamopy/client.py: a key reaches the node as the key it is, whatever its characters."""

import httpx
import pytest

from dynamopy.api.data import path_key
from dynamopy.client import key_path


@pytest.mark.parametrize("key", [".", "..", "a/../b", "./x", "a/.", "x/..", "%2E", "a?b#c",
                                 " ", "ü", "/", "//"])
def test_every_key_arrives_as_itself(key):
    """Found by a user (session 13): `dynamopy put . v` failed ("Expecting value"), `dynamopy
    get .` ended in a traceback (KeyError: 'etag') and `put ..` answered 404: httpx drops
    the dot segments "." and ".." from a path (RFC 3986 5.2.4), so the request went to
    /kv or /. The key arrives byte for byte as the node decodes the raw path."""
    raw_path = httpx.URL("http://127.0.0.1:8001/kv/" + key_path(key)).raw_path
    scope = {"raw_path": raw_path.split(b"?")[0], "path": "unused"}
    assert path_key(scope, "/kv/") == key, raw_path
