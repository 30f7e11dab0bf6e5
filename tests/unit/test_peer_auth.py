"""auth: pure handshake functions."""

import pytest

from dynamopy.peer import auth
from dynamopy.peer.errors import AuthError

SECRET = b"cluster-secret"
NS = b"s" * auth.NONCE_BYTES
NC = b"c" * auth.NONCE_BYTES


def test_full_handshake():
    nonce_s = auth.parse_server_hello(auth.server_hello(NS))
    answer = auth.client_answer(SECRET, "n1", nonce_s, NC)
    client_id, nonce_c = auth.verify_client_answer(SECRET, NS, answer)
    assert (client_id, nonce_c) == ("n1", NC)
    reply = auth.server_accept(SECRET, "n2", nonce_c, NS)
    assert auth.verify_server_answer(SECRET, NS, NC, reply) == "n2"


def test_wrong_secret_rejected_both_ways():
    answer = auth.client_answer(b"wrong", "n1", NS, NC)
    with pytest.raises(AuthError):
        auth.verify_client_answer(SECRET, NS, answer)
    reply = auth.server_accept(b"wrong", "n2", NC, NS)
    with pytest.raises(AuthError):
        auth.verify_server_answer(SECRET, NS, NC, reply)


def test_replay_and_reflection_rejected():
    answer = auth.client_answer(SECRET, "n1", NS, NC)
    # Replayed against a fresh server nonce.
    with pytest.raises(AuthError):
        auth.verify_client_answer(SECRET, b"t" * auth.NONCE_BYTES, answer)
    # Claiming another id with the same MAC.
    with pytest.raises(AuthError):
        auth.verify_client_answer(SECRET, NS, {**answer, "id": "n9"})
    # A server MAC reflected as a client MAC.
    reflected = {"id": "", "nonce": NC, "mac": auth.server_mac(SECRET, NS, NC)}
    with pytest.raises(AuthError):
        auth.verify_client_answer(SECRET, NS, reflected)


@pytest.mark.parametrize(
    "msg",
    [None, [], {"id": "n1"}, {"id": 1, "nonce": NC, "mac": b""}, {"id": "n1", "nonce": b"short", "mac": b""}],
)
def test_malformed_answers(msg):
    with pytest.raises(AuthError):
        auth.verify_client_answer(SECRET, NS, msg)


def test_rejection_and_malformed_hello():
    with pytest.raises(AuthError, match="unauthorized"):
        auth.verify_server_answer(SECRET, NS, NC, auth.server_reject())
    with pytest.raises(AuthError):
        auth.parse_server_hello({"hello": b"short"})
    with pytest.raises(AuthError):
        auth.parse_server_hello([0, 1, "m", None])
