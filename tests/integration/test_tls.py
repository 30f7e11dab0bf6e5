"""TLS on both ports (--tls-cert/--tls-key/--tls-ca): HTTPS for clients, mutual TLS between
peers with the member id checked against the certificate, the HMAC handshake inside it.

One 3-node TLS cluster is shared by the module; certificates are made here (certs.py).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys

import httpx
import pytest

from dynamopy.client import AsyncClient, Client, DynamoError
from dynamopy.peer import PeerClient
from dynamopy.peer.errors import AuthError, PeerUnavailable
from dynamopy.tls import TLSFiles, peer_client_context
from tests.integration.certs import CA
from tests.integration.cluster import LocalCluster

pytestmark = pytest.mark.integration
SECRET = "tls-test-secret"


class TLSCluster(LocalCluster):
    """LocalCluster whose nodes serve HTTPS and peer mutual TLS; node i's certificate names
    its member id (n1, n2, ...) and 127.0.0.1."""

    scheme = "https"

    def __init__(self, root: str, ca: CA, nodes: int = 3):
        self.ca = ca
        self.verify = ssl.create_default_context(cafile=str(ca.cert_path))
        super().__init__(root, nodes, secret=SECRET)
        self.certs = {i: ca.issue(self.node_id(i), [self.node_id(i)]) for i in range(nodes + 4)}

    def client(self, i: int = 0, **kw) -> Client:
        return Client(self.url(i), ca=str(self.ca.cert_path), **kw)

    def args(self, i, extra=None):
        cert, key = self.certs[i]
        return super().args(i, extra) + ["--tls-cert", cert, "--tls-key", key,
                                          "--tls-ca", str(self.ca.cert_path)]


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    ca = CA("cluster", root / "pki")
    cluster = TLSCluster(str(root), ca)
    cluster.start(timeout_s=90)
    yield cluster
    cluster.stop()


def test_tls_cluster_forms_and_serves_https(tls):
    with tls.client(0) as c:
        members = c.cluster()["members"]
        assert sorted(m["id"] for m in members) == ["n1", "n2", "n3"]
        assert all(m["url"].startswith("https://") for m in members)
        assert c.put("tls/a", b"secret value", w=3)["acks"] == 3
    with tls.client(2) as c:
        assert c.get("tls/a", r=3).value == b"secret value"

    async def async_get():
        async with AsyncClient(tls.url(1), ca=str(tls.ca.cert_path)) as ac:
            return (await ac.get("tls/a")).value
    assert asyncio.run(async_get()) == b"secret value"
    # plain HTTP on the HTTPS port gets nowhere
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls.url(0).replace("https://", "http://") + "/health", timeout=3.0)
    # without the cluster's CA the certificate is not trusted
    with Client(tls.url(0), timeout_s=3.0) as c:
        with pytest.raises(DynamoError) as e:
            c.get("tls/a")
        assert e.value.status == 0 and "CERTIFICATE_VERIFY_FAILED" in e.value.detail


def test_cli_over_https(tls):
    ca = str(tls.ca.cert_path)
    env = {**os.environ, "DYNAMOPY_URL": tls.url(1)}
    env.pop("DYNAMOPY_CA", None)
    cli = [sys.executable, "-m", "dynamopy"]
    run = lambda *a, **kw: subprocess.run([*cli, *a], capture_output=True, timeout=60, **kw)
    out = run("put", "tls/cli", "over https", "--ca", ca, env=env)
    assert out.returncode == 0, out.stderr
    out = run("get", "tls/cli", env={**env, "DYNAMOPY_CA": ca})
    assert out.returncode == 0 and out.stdout == b"over https", out.stderr
    out = run("ring", "--ca", ca, env=env)
    assert out.returncode == 0 and out.stdout.count(b"https://127.0.0.1") == 3, out.stderr
    refused = run("get", "tls/cli", env=env)            # no CA: refused, one line, no traceback
    assert refused.returncode != 0 and b"CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert b"Traceback" not in refused.stderr


def _peer_call(addr: str, member_id: str, ctx) -> dict:
    async def go():
        client = PeerClient(member_id, SECRET.encode(), ssl=ctx, connect_timeout_s=3.0)
        try:
            return await client.call(addr, "ping", {}, 5.0)
        finally:
            await client.close()
    return asyncio.run(go())


def test_peer_port_admits_only_certificates_of_the_cluster_ca_naming_the_member(tls, tmp_path):
    addr = f"127.0.0.1:{tls.base + 1000}"
    ca = tls.ca
    # positive control: a certificate of the cluster's CA naming the id the peer claims
    cert, key = ca.issue("n9", ["n9"])
    assert _peer_call(addr, "n9", peer_client_context(TLSFiles(cert, key, str(ca.cert_path))))["id"] == "n1"

    # a certificate from another CA, with the right secret and a plausible name: refused
    other = CA("intruder", tmp_path / "other")
    cert, key = other.issue("n2-fake", ["n2"])
    with pytest.raises(PeerUnavailable):
        _peer_call(addr, "n2", peer_client_context(TLSFiles(cert, key, str(ca.cert_path))))

    # TLS without a client certificate: refused
    import ssl
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.load_verify_locations(cafile=str(ca.cert_path))
    bare.check_hostname = False
    with pytest.raises(PeerUnavailable):
        _peer_call(addr, "n2", bare)

    # no TLS at all (the HMAC handshake alone, which is all a cluster without TLS uses)
    with pytest.raises((PeerUnavailable, AuthError)):
        _peer_call(addr, "n2", None)

    # the cluster's CA, but the certificate names another member than the one claimed
    cert, key = ca.issue("mallory", ["mallory"])
    with pytest.raises(AuthError):
        _peer_call(addr, "n2", peer_client_context(TLSFiles(cert, key, str(ca.cert_path))))

    # the cluster still works after all that
    with tls.client(0) as c:
        assert c.get("tls/a", r=3).value == b"secret value"


def test_peer_port_drops_a_tls_handshake_that_never_comes(tls):
    """A client that connects and sends nothing is cut off after the handshake timeout
    (5 s), not asyncio's 60 s TLS default."""
    import socket
    # The socket's 30 s timeout is the event that tells the two apart: a node still waiting
    # at 30 s makes recv raise socket.timeout and the test fail.
    with socket.create_connection(("127.0.0.1", tls.base + 1000), timeout=30) as s:
        try:
            data = s.recv(1)
        except ConnectionResetError:
            data = b""
        assert data == b""
