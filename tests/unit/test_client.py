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


@pytest.mark.parametrize("status, headers", [(200, {}), (307, {"location": "/kv/"}),
                                             (200, {"etag": "W/\"abc\""})])
def test_an_answer_that_is_no_dynamopy_read_is_an_error_not_a_traceback(status, headers):
    """Found by a user (session 13): `dynamopy get .` (the request went to /kv, a 307) ended
    in a traceback, KeyError: 'etag'; so would any --url that is not a dynamopy node. A read
    answered without a version is a DynamoError (the CLI's one-line error, exit 1)."""
    from dynamopy.client import Client, DynamoError

    def answer(request):
        return httpx.Response(status, headers=headers, content=b"<html>not dynamopy</html>")

    with Client("http://127.0.0.1:1", session=False) as c:
        c.http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(answer))
        with pytest.raises(DynamoError) as e:
            c.get("k")
    assert e.value.status == status and "version" in str(e.value), e.value


def test_a_session_file_nested_too_deeply_is_a_one_line_error(tmp_path, capsys):
    """Found by a user's bad input (session 13): a --session file of 100,000 nested brackets
    ended the CLI in a traceback (RecursionError); it is a file that is not a session."""
    from dynamopy.cli import main
    path = tmp_path / "session"
    path.write_text("[" * 100000 + "]" * 100000)
    assert main(["get", "k", "--url", "127.0.0.1:1", "--session", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dynamopy: error: session file {path} is not a JSON object"), err
