"""The HTTP contract at the edges a client library would smooth over: raw key bytes, repeated
parameters, conditional headers, HEAD/OPTIONS/405, the bearer scheme, value limits. Requests
go out through ``http.client`` or a raw socket, exactly as written here."""

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest

from dynamopy.config import MAX_VALUE_BYTES_LIMIT
from tests.integration.cluster import allocate_ports

pytestmark = pytest.mark.integration

KV_ALLOW = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


def request(port: int, method: str, path: str, body: bytes = b"", headers=None,
            timeout_s: float = 10.0):
    """One request as written (no path normalisation); returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body or method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_exchange(port: int, head: bytes) -> bytes:
    """Send raw request bytes with ``Connection: close``; return every byte the server sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def allow_of(headers: dict) -> set:
    return {m.strip() for m in headers["allow"].split(",")}


@pytest.fixture(scope="module")
def port(shared_cluster):
    return shared_cluster.base


def no_replica_holds(cluster, key: str) -> bool:
    return all(cluster.local_record(i, key) is None for i in range(cluster.size))


# ---- issue 15 item 1: keys are the raw percent-decoded bytes, UTF-8 or refused -----------

def test_non_utf8_keys_are_refused_and_never_merge(shared_cluster, port):
    for method, path in [("PUT", "/kv/%ff%fe"), ("GET", "/kv/%80%80"), ("GET", "/kv/%fe%ff"),
                         ("DELETE", "/kv/ok/%c3"), ("HEAD", "/kv/%ff"),
                         ("GET", "/cluster/preference-list/%ff%fe"), ("GET", "/node/kv/%ff%fe")]:
        status, headers, body = request(port, method, path, b"bad" if method == "PUT" else b"")
        assert status == 400, (method, path, status, body)
        if method != "HEAD":
            assert b'"bad_request"' in body and b"UTF-8" in body
    # What the bad bytes used to become (U+FFFD U+FFFD) is a valid, distinct key: never written.
    status, _, _ = request(port, "GET", "/kv/%EF%BF%BD%EF%BF%BD")
    assert status == 404
    assert no_replica_holds(shared_cluster, "\ufffd\ufffd")
    # A valid multi-byte key still round-trips through the raw path.
    assert request(port, "PUT", "/kv/%C3%A9t%C3%A9", b"summer")[0] == 200
    assert request(port, "GET", "/kv/%C3%A9t%C3%A9")[2] == b"summer"


# ---- issue 15 item 2: a repeated parameter is a 400, never "the last one wins" -----------

def test_repeated_query_parameters_are_refused(shared_cluster, port):
    for method, path in [("PUT", "/kv/rep?w=3&w=1"), ("PUT", "/kv/rep?w=2&w=2"),
                         ("PUT", "/kv/rep?strict=true&strict=false"),
                         ("PUT", "/kv/rep?w=3&%77=1"),
                         ("DELETE", "/kv/rep?w=3&w=1"), ("GET", "/kv/rep?r=3&r=1"),
                         ("GET", "/cluster/log?since=0&since=1"),
                         ("DELETE", "/cluster/members/nobody?force=true&force=true")]:
        status, _, body = request(port, method, path, b"v" if method == "PUT" else b"")
        assert status == 400 and b'"bad_request"' in body and b"more than once" in body, \
            (method, path, status, body)
    assert no_replica_holds(shared_cluster, "rep")


# ---- issue 21 item 2: conditional headers ----------------------------------------------

def test_conditional_headers_304_on_reads_refused_on_writes(shared_cluster, port):
    assert request(port, "PUT", "/kv/cond?w=3", b"first")[0] == 200
    status, headers, body = request(port, "GET", "/kv/cond")
    etag = headers["etag"]
    assert status == 200 and body == b"first"
    for condition in (etag, "W/" + etag, "*", f'"1", {etag}'):
        for method in ("GET", "HEAD"):
            status, headers, body = request(port, method, "/kv/cond",
                                            headers={"If-None-Match": condition})
            assert (status, headers["etag"], body) == (304, etag, b""), (method, condition)
    status, _, body = request(port, "GET", "/kv/cond", headers={"If-None-Match": '"1"'})
    assert (status, body) == (200, b"first")
    # Writes take no preconditions: create-only over replicas would not be atomic.
    for method, path, headers in [
            ("PUT", "/kv/cond", {"If-None-Match": "*"}),
            ("PUT", "/kv/cond-new", {"If-None-Match": "*"}),
            ("PUT", "/kv/cond", {"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
            ("DELETE", "/kv/cond", {"If-None-Match": etag}),
            ("DELETE", "/kv/cond", {"If-Match": etag}),
            ("GET", "/kv/cond", {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
            ("GET", "/kv/cond", {"If-Range": etag, "Range": "bytes=0-1"}),
            ("GET", "/kv/cond", {"If-Match": etag}),
            ("GET", "/kv/cond", {"If-None-Match": "not-a-tag"})]:
        status, _, body = request(port, method, path, b"second" if method == "PUT" else b"",
                                  headers=headers)
        assert status == 400 and b'"bad_request"' in body, (method, path, headers, body)
    assert request(port, "GET", "/kv/cond?r=3")[1]["etag"] == etag
    assert no_replica_holds(shared_cluster, "cond-new")


# ---- issue 21 item 3: HEAD, OPTIONS, 405 with the path's full Allow ----------------------

def test_head_options_and_405_list_every_method(port):
    assert request(port, "PUT", "/kv/headed", b"0123456789",
                   headers={"Content-Type": "text/plain"})[0] == 200
    _, get_headers, get_body = request(port, "GET", "/kv/headed")
    sent = raw_exchange(port, b"HEAD /kv/headed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""   # no body bytes at all
    status, headers, body = request(port, "HEAD", "/kv/headed")
    assert status == 200 and body == b""
    for name in ("content-length", "content-type", "etag"):
        assert headers[name] == get_headers[name], name
    assert int(headers["content-length"]) == len(get_body) == 10
    sent = raw_exchange(port, b"HEAD /kv/never HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert sent.startswith(b"HTTP/1.1 404") and sent.partition(b"\r\n\r\n")[2] == b""

    status, headers, _ = request(port, "OPTIONS", "/kv/headed")
    assert status == 204 and allow_of(headers) == KV_ALLOW
    status, headers, body = request(port, "POST", "/kv/headed", b"x")
    assert status == 405 and allow_of(headers) == KV_ALLOW and b'"method_not_allowed"' in body
    assert request(port, "GET", "/kv/headed")[2] == b"0123456789"   # the POST changed nothing

    sent = raw_exchange(port, b"HEAD /cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length:" in head.lower() and rest == b""
    for method, path, allow in [("POST", "/cluster", {"GET", "HEAD", "OPTIONS"}),
                                ("PUT", "/cluster/members", {"POST", "OPTIONS"}),
                                ("PATCH", "/cluster/members/n1", {"DELETE", "OPTIONS"}),
                                ("DELETE", "/health", {"GET", "HEAD", "OPTIONS"})]:
        status, headers, body = request(port, method, path)
        assert status == 405 and allow_of(headers) == allow, (method, path, headers)
        assert b'"method_not_allowed"' in body
        status, headers, _ = request(port, "OPTIONS", path)
        assert status == 204 and allow_of(headers) == allow, (path, headers)


# ---- issue 21 item 4: the bearer scheme is case-insensitive -------------------------------

def test_bearer_scheme_is_case_insensitive(token_node):
    port = token_node.base
    for value in ("Bearer s3cret-token", "bearer s3cret-token", "BEARER s3cret-token",
                  "bEaReR   s3cret-token"):
        status, _, body = request(port, "PUT", "/kv/auth", b"v", {"Authorization": value})
        assert status == 200, (value, body)
        assert request(port, "GET", "/cluster", headers={"Authorization": value})[0] == 200
    for value in ("Bearer wrong-token", "Basic s3cret-token", "Bearers3cret-token",
                  "Bearer s3cret-token-and-more", "s3cret-token", "Bearer"):
        status, headers, body = request(port, "PUT", "/kv/auth", b"w", {"Authorization": value})
        assert status == 401 and headers["www-authenticate"] == "Bearer", (value, body)
    assert request(port, "PUT", "/kv/auth", b"w")[0] == 401
    assert request(port, "GET", "/kv/auth",
                   headers={"Authorization": "BEARER s3cret-token"})[2] == b"v"


# ---- issue 21 item 1: a value always fits in a peer frame ----------------------------------

def test_max_value_bytes_above_a_peer_frame_is_refused_at_start(tmp_path):
    port = allocate_ports(1)
    proc = subprocess.run(
        [sys.executable, "-m", "dynamopy", "serve", "--port", str(port),
         "--data-dir", str(tmp_path / "n"), "--max-value-bytes", str(MAX_VALUE_BYTES_LIMIT + 1)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--max-value-bytes" in lines[0] and "frame" in lines[0], lines
    assert not (tmp_path / "n").exists()   # refused before anything was created


def test_a_value_at_the_limit_is_stored_on_every_replica_and_read_back(make_cluster):
    """The largest value, key and Content-Type together still fit a put, a read reply and
    a read repair frame (before: a 34 MB value answered 503 with one ack)."""
    # 34 MB through three replicas: give a busy 2-core machine time (the bug this guards
    # against is a refused frame, which no timeout rescues).
    c = make_cluster(3, extra=["--max-value-bytes", str(MAX_VALUE_BYTES_LIMIT),
                               "--request-timeout-s", "20"])
    key = "k" * 1024
    ctype = "application/x-" + "t" * (1024 - len("application/x-"))
    value = bytes(range(256)) * (MAX_VALUE_BYTES_LIMIT // 256)
    value += b"\x00" * (MAX_VALUE_BYTES_LIMIT - len(value))
    status, _, body = request(c.base, "PUT", f"/kv/{key}?w=3", value,
                              {"Content-Type": ctype}, timeout_s=60)
    assert status == 200 and b'"acks": 3' in body, body
    status, headers, got = request(c.base + 1, "GET", f"/kv/{key}?r=3", timeout_s=60)
    assert status == 200 and got == value and headers["content-type"] == ctype
    status, _, body = request(c.base, "PUT", f"/kv/{key}", value + b"x",
                              {"Content-Type": ctype}, timeout_s=60)
    assert status == 413 and b'"too_large"' in body
    status, _, body = request(c.base, "PUT", "/kv/ctype", b"v",
                              {"Content-Type": ctype + "x"})
    assert status == 400 and b"Content-Type" in body


# ---- issue 15 item 9: /docs works with no network ---------------------------------------

def test_docs_and_every_asset_they_reference_are_served_by_the_node(token_node):
    """Every script, stylesheet, icon and the OpenAPI document the Swagger UI page loads
    comes from the node itself (no CDN), and loads without the API token."""
    import re

    c = token_node
    status, headers, page = request(c.base, "GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")
    html = page.decode()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert any(r.endswith(".js") for r in refs) and any(r.endswith(".css") for r in refs), refs
    assert "/openapi.json" in refs
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), f"{ref} is not on the node"
        status, headers, body = request(c.base, "GET", ref)
        assert status == 200 and len(body) > 100, (ref, status)
    assert "validatorUrl\": null" in html   # the online validator badge would call out


# ---- issue 13 item 1: the 413 reaches the client, never a TCP reset ------------------------

def _send_oversized(sock: socket.socket, head: bytes, body: bytes) -> str:
    """Send ``head`` then ``body`` in 64 KiB pieces, as a client on a real network would (the
    server's answer comes before the body is in); return the error if a send failed."""
    try:
        sock.sendall(head)
        for i in range(0, len(body), 65536):
            sock.sendall(body[i:i + 65536])
            time.sleep(0.0002)
    except OSError as e:
        return type(e).__name__
    return ""


def _read_answer(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """(status, head, body) of one answer with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed mid-body after {body!r}")
        body += chunk
    return int(head.split(b" ")[1]), head, body


def test_an_oversized_put_gets_the_413_every_time(port):
    """1 MiB + 1 byte, a hundred times, each on a connection the client will close: every
    send completes and every answer is the 413 with its JSON body. Before: the node closed
    the socket with the rest of the body unread, the kernel answered the client's next
    bytes with a reset, and the client saw "connection reset" instead of the 413."""
    body = b"x" * (1024 * 1024 + 1)
    head = (f"PUT /kv/too-big HTTP/1.1\r\nHost: n1\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n").encode()
    failures = []
    for attempt in range(100):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            error = _send_oversized(s, head, body)
            try:
                status, _, answer = _read_answer(s)
            except OSError as e:
                failures.append((attempt, error, type(e).__name__))
                continue
            if error or status != 413 or json.loads(answer)["error"] != "too_large":
                failures.append((attempt, error, status, answer[:80]))
    assert failures == [], f"{len(failures)} of 100 failed: {failures[:5]}"


def test_after_an_early_413_a_keep_alive_connection_serves_the_next_request(port):
    """Without ``Connection: close`` the node reads and drops the rest of the body and keeps
    the connection: the next request on it is answered. A body declared far beyond what is
    worth draining gets ``Connection: close`` on its 413, and still no reset."""
    body = b"y" * (1024 * 1024 + 1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        head = f"PUT /kv/too-big HTTP/1.1\r\nHost: n1\r\nContent-Length: {len(body)}\r\n\r\n"
        assert _send_oversized(s, head.encode(), body) == ""
        status, answer_head, _ = _read_answer(s)
        assert status == 413 and b"connection: close" not in answer_head.lower()
        s.sendall(b"GET /health HTTP/1.1\r\nHost: n1\r\n\r\n")
        assert _read_answer(s)[0] == 200
    declared = 1 << 30   # 1 GiB declared; 1.5 MiB sent before the client gives up
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        head = f"PUT /kv/huge HTTP/1.1\r\nHost: n1\r\nContent-Length: {declared}\r\n\r\n"
        assert _send_oversized(s, head.encode(), b"z" * (3 << 19)) == ""
        status, answer_head, answer = _read_answer(s)
        assert status == 413 and json.loads(answer)["error"] == "too_large"
        assert b"connection: close" in answer_head.lower()
        assert s.recv(1) == b""   # FIN after the answer (the node shut its write side)


# ---- connection semantics of the HTTP port (--http-server fast answers /kv without ASGI;
# run with DYNAMOPY_HTTP_SERVER=uvicorn to check the same against uvicorn's cycle) --------

def _answers(data: bytes, methods: list) -> list:
    """Split the bytes a server sent into (status, headers, body), one per request method
    (a HEAD answer, a 1xx, 204 and 304 carry no body)."""
    out = []
    for method in methods:
        while True:
            head, _, data = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ")[1])
            if status != 100:
                break
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        length = 0 if method == "HEAD" or status in (204, 304) else int(
            headers.get("content-length", 0))
        out.append((status, headers, data[:length]))
        data = data[length:]
    assert data == b"", f"bytes after the last answer: {data[:200]!r}"
    return out


def test_pipelined_requests_are_answered_in_order_on_one_connection(port):
    """Eight requests in one write, data and non-data routes mixed: one answer each, in
    the order asked, each seeing the writes before it; the last asks Connection: close and
    the node closes after answering it."""
    def req(method, path, body=b"", extra=""):
        length = f"Content-Length: {len(body)}\r\n" if method == "PUT" else ""
        return (f"{method} {path} HTTP/1.1\r\nHost: n1\r\n{length}{extra}\r\n").encode() + body
    plan = [("PUT", "/kv/pipelined", b"one"), ("GET", "/health", b""),
            ("GET", "/kv/pipelined", b""), ("PUT", "/kv/pipelined", b"second"),
            ("HEAD", "/kv/pipelined", b""), ("OPTIONS", "/kv/pipelined", b""),
            ("DELETE", "/kv/pipelined?w=3", b""), ("GET", "/kv/pipelined", b"")]
    wire = b"".join(req(m, p, b, "Connection: close\r\n" if i == len(plan) - 1 else "")
                    for i, (m, p, b) in enumerate(plan))
    answers = _answers(raw_exchange(port, wire), [m for m, _, _ in plan])
    assert [a[0] for a in answers] == [200, 200, 200, 200, 200, 204, 200, 404]
    assert answers[2][2] == b"one"
    assert answers[4][1]["content-length"] == "6" and answers[4][2] == b""
    assert answers[4][1]["etag"] == f'"{json.loads(answers[3][2])["version"]}"'
    assert json.loads(answers[6][2])["acks"] == 3
    assert json.loads(answers[7][2])["error"] == "not_found"
    assert answers[7][1]["connection"] == "close"
    assert all("connection" not in a[1] for a in answers[:-1])


def test_http_1_0_expect_100_continue_and_keep_alive_reuse(port):
    # HTTP/1.0 without keep-alive: answered, then closed.
    (status, headers, body), = _answers(raw_exchange(
        port, b"PUT /kv/old-client HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"), ["PUT"])
    assert status == 200 and headers["connection"] == "close"
    # Expect: 100-continue: the interim answer comes before the body is sent.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PUT /kv/continued HTTP/1.1\r\nHost: n1\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        assert _read_answer(s)[0] == 200
        # The connection stays open: a second request on it is answered.
        s.sendall(b"GET /kv/continued HTTP/1.1\r\nHost: n1\r\n\r\n")
        status, _, body = _read_answer(s)
        assert status == 200 and body == b"hello"


def test_a_latin_1_content_type_comes_back_byte_for_byte(port):
    """Header values are latin-1 text: a Content-Type with a byte above 0x7f is stored and
    served back unchanged (as uvicorn's cycle does), not refused with a 500."""
    ctype = b"text/plain; name=caf\xe9"
    answers = _answers(raw_exchange(
        port, b"PUT /kv/latin-1 HTTP/1.1\r\nHost: n1\r\nContent-Type: " + ctype +
        b"\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /kv/latin-1 HTTP/1.1\r\nHost: n1\r\nConnection: close\r\n\r\n"), ["PUT", "GET"])
    assert [a[0] for a in answers] == [200, 200]
    assert answers[1][1]["content-type"] == ctype.decode("latin-1")
    assert answers[1][2] == b"hi"


def _readme_fields(route: str) -> tuple[set, set]:
    """The top-level keys and the ``members`` item keys the README's table row for
    ``route`` lists (its first ``{...}`` code span)."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| `{route}` |"))
    shape = re.search(r"\| `(\{.*?\})`", row).group(1)
    members = re.search(r'"members":\[\{(.*?)\}\]', shape)
    inner = set(re.findall(r'"(\w+)"', members.group(1))) if members else set()
    # top level: drop the nested objects' and lists' contents, keep their names
    flat = shape[1:-1]
    while True:
        inner_gone = re.sub(r"\[[^\[\]]*\]", "", re.sub(r"\{[^{}]*\}", "", flat))
        if inner_gone == flat:
            break
        flat = inner_gone
    return set(re.findall(r'"(\w+)"', flat)), inner


def test_get_cluster_and_get_node_answer_the_fields_the_readme_lists(port):
    """The README's rows for GET /cluster and GET /node name every field the node answers
    (an undocumented field, or a documented one that is gone, fails). ``zone`` and
    ``seed_tokens`` of /node appear only with ``--zone`` and before the bootstrap."""
    status, _h, body = request(port, "GET", "/cluster")
    assert status == 200
    view = json.loads(body)
    top, members = _readme_fields("GET /cluster")
    assert set(view) == top
    assert all(set(m) == members for m in view["members"]), view["members"]
    status, _h, body = request(port, "GET", "/node")
    assert status == 200
    top, _ = _readme_fields("GET /node")
    assert set(json.loads(body)) == top - {"zone"}
