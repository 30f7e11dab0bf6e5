"""Optional TLS for both ports (``--tls-cert``, ``--tls-key``, ``--tls-ca``).

Rules:

* TLS is on when a certificate is configured; then the key and the CA are required too.
  The HTTP port serves HTTPS with the node's certificate (clients are not asked for one).
  The peer port runs mutual TLS: each side presents its certificate and accepts only a
  certificate issued by the CA (``ca``), in both directions; a peer without one, or with one
  from another CA, fails the TLS handshake before any byte of the protocol is read.
* Inside TLS the HMAC handshake on the cluster secret still runs, and then each side checks
  that the other's certificate *names the member id it claimed* in that handshake
  (``names_member``). So a certificate issued to one member cannot be used to speak as
  another, unless it is a wildcard issued to the whole set.
* Peers are reached by address, and pods advertise DNS names while tests use 127.0.0.1, so
  the peer port does not match the certificate against the address (no hostname check); the
  member-id check takes its place. HTTPS clients (the client library, the CLI, a node calling
  another's HTTP API) verify the host name against the CA as usual.

``names_member(names, member_id)``: a DNS name in the certificate's subjectAltName names the
member if it equals the id, or its first label equals the id (``n1.peers.example``), or its
first label is ``*`` (a wildcard certificate such as ``*.dynamopy-peers.ns.svc.cluster.local``
names every member of the set). Names compare case-insensitively.

Certificate files use cert-manager's key names in the manifests (``tls.crt``, ``tls.key``,
``ca.crt``) but any paths work.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from dataclasses import dataclass
from typing import Any, Optional

from dynamopy.peer.errors import AuthError


@dataclass(frozen=True)
class TLSFiles:
    cert: str
    key: str
    ca: str


def files(cert: str, key: str, ca: str) -> Optional[TLSFiles]:
    """``TLSFiles`` when TLS is configured, ``None`` when not; ValueError if half set."""
    given = {"--tls-cert": cert, "--tls-key": key, "--tls-ca": ca}
    if not any(given.values()):
        return None
    missing = [flag for flag, v in given.items() if not v]
    if missing:
        raise ValueError(f"TLS needs --tls-cert, --tls-key and --tls-ca together; missing {', '.join(missing)}")
    return TLSFiles(cert, key, ca)


def peer_server_context(f: TLSFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f.cert, f.key)
    ctx.load_verify_locations(cafile=f.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_client_context(f: TLSFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f.cert, f.key)
    ctx.load_verify_locations(cafile=f.ca)
    ctx.check_hostname = False        # the member-id check replaces it (module docstring)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def https_client_context(ca: str) -> ssl.SSLContext:
    """For HTTPS clients: trust ``ca``, check host names."""
    return ssl.create_default_context(cafile=ca)


def cert_dns_names(peercert: Optional[dict]) -> list[str]:
    """The DNS names in a certificate as ``SSLObject.getpeercert()`` returns it."""
    if not peercert:
        return []
    return [v for k, v in peercert.get("subjectAltName", ()) if k == "DNS"]


def names_member(names: list[str], member_id: str) -> bool:
    mid = member_id.lower()
    for name in names:
        name = name.lower().rstrip(".")
        first = name.split(".", 1)[0]
        if name == mid or first == mid or first == "*":
            return True
    return False


def check_peer(transport: Any, member_id: str) -> None:
    """Raise ``AuthError`` unless the peer's TLS certificate names ``member_id``.
    A connection without TLS passes (the node did not configure TLS)."""
    if transport is None or transport.get_extra_info("sslcontext") is None:
        return
    names = cert_dns_names(transport.get_extra_info("peercert"))
    if not names_member(names, member_id):
        raise AuthError(f"peer claims member id {member_id!r} but its certificate names {names}")


def self_signed(directory: str, dns: list[str], ips: tuple[str, ...] = ("127.0.0.1",)) -> TLSFiles:
    """A throwaway self-signed certificate naming ``dns`` and ``ips`` that is its own CA, made
    with the ``openssl`` command: for benchmarks and experiments, never for a real cluster."""
    cert, key = os.path.join(directory, "self-signed.crt"), os.path.join(directory, "self-signed.key")
    sans = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=dynamopy-self-signed",
                    "-addext", f"subjectAltName={sans}"], check=True, capture_output=True)
    return TLSFiles(cert, key, cert)
