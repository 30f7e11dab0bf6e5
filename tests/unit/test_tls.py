"""dynamopy.tls: which certificate names a member, the all-or-nothing TLS settings, and the
https default for the advertised URL."""

import argparse

import pytest

from dynamopy import config as config_mod
from dynamopy.peer.errors import AuthError
from dynamopy.tls import check_peer, files, names_member


@pytest.mark.parametrize("names, member, ok", [
    (["n1"], "n1", True),
    (["N1"], "n1", True),
    (["dynamopy-0.dynamopy-peers.ns.svc.cluster.local"], "dynamopy-0", True),
    (["*.dynamopy-peers.ns.svc.cluster.local"], "dynamopy-7", True),   # the set's wildcard
    (["dynamopy-0.dynamopy-peers.ns.svc"], "dynamopy-1", False),
    (["n10"], "n1", False),
    (["n1x.example"], "n1", False),
    ([], "n1", False),
])
def test_names_member(names, member, ok):
    assert names_member(names, member) is ok


class _Transport:
    def __init__(self, tls: bool, sans=()):
        self.extra = {"sslcontext": object() if tls else None,
                      "peercert": {"subjectAltName": tuple(sans)} if tls else None}

    def get_extra_info(self, name):
        return self.extra.get(name)


def test_check_peer_compares_the_claimed_id_with_the_certificate():
    check_peer(_Transport(True, [("DNS", "n2"), ("IP Address", "127.0.0.1")]), "n2")
    with pytest.raises(AuthError, match="n2"):
        check_peer(_Transport(True, [("DNS", "n3")]), "n2")
    with pytest.raises(AuthError):
        check_peer(_Transport(True, [("IP Address", "127.0.0.1")]), "n2")
    check_peer(_Transport(False), "n2")   # no TLS on this node: the HMAC handshake alone


def test_tls_settings_are_all_or_nothing():
    assert files("", "", "") is None
    with pytest.raises(ValueError, match="--tls-key"):
        files("c.pem", "", "ca.pem")


def _resolve(**env):
    p = argparse.ArgumentParser()
    config_mod.add_arguments(p)
    return config_mod.resolve(p.parse_args([]), {f"DYNAMOPY_{k.upper()}": v for k, v in env.items()})


def test_tls_turns_the_default_advertised_url_to_https(tmp_path):
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    cfg = _resolve(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem"),
                   tls_ca=str(tmp_path / "ca.pem"), port="8443")
    assert cfg.advertise_url == "https://127.0.0.1:8443" and cfg.tls is not None
    assert _resolve(port="8443").advertise_url == "http://127.0.0.1:8443"
    with pytest.raises(ValueError, match="not found"):
        _resolve(tls_cert=str(tmp_path / "nope"), tls_key=str(tmp_path / "k.pem"),
                 tls_ca=str(tmp_path / "ca.pem"))
