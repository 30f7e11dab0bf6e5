"""Insecure defaults stay on loopback: dynamopy.exposure and the --insecure setting."""

from __future__ import annotations

import argparse

import pytest

from dynamopy import config as config_mod
from dynamopy.exposure import assess, is_loopback_host


def resolver(table):
    def resolve(host):
        if host not in table:
            raise OSError("unknown host")
        return table[host]
    return resolve


NAMES = resolver({"localhost": ["127.0.0.1", "::1"], "box": ["192.168.1.5"],
                  "mixed": ["127.0.0.1", "10.0.0.1"]})


def make(argv, environ=None):
    p = argparse.ArgumentParser()
    config_mod.add_arguments(p)
    return config_mod.resolve(p.parse_args(argv), environ or {})


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("", False),
    ("10.1.2.3", False), ("box", False), ("mixed", False), ("nowhere", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host, NAMES) is loopback


def test_loopback_keeps_the_defaults_quietly():
    e = assess(make([]), NAMES)
    assert e.refusal is None and e.warnings == []


def test_exposed_node_with_the_default_secret_is_refused_in_one_line():
    e = assess(make(["--host", "0.0.0.0"]), NAMES)
    assert e.refusal is not None and "\n" not in e.refusal
    assert "--cluster-secret" in e.refusal and "--insecure" in e.refusal


def test_insecure_flag_or_env_turns_the_refusal_into_warnings():
    for cfg in (make(["--host", "0.0.0.0", "--insecure"]),
                make(["--host", "0.0.0.0"], {"DYNAMOPY_INSECURE": "true"})):
        assert cfg.insecure is True
        e = assess(cfg, NAMES)
        assert e.refusal is None
        assert any(w.startswith("INSECURE") and "--cluster-secret" in w for w in e.warnings)
        assert any("--api-token" in w for w in e.warnings)


def test_own_secret_without_token_warns_about_the_token_only():
    e = assess(make(["--host", "10.0.0.7", "--cluster-secret", "s3cret"]), NAMES)
    assert e.refusal is None and len(e.warnings) == 1 and "--api-token" in e.warnings[0]
    e = assess(make(["--host", "10.0.0.7", "--cluster-secret", "s3cret",
                     "--api-token", "t"]), NAMES)
    assert e.refusal is None and e.warnings == []


def test_bad_values_of_the_new_settings_are_clear_errors():
    with pytest.raises(ValueError, match="--insecure"):
        make([], {"DYNAMOPY_INSECURE": "maybe"})
    with pytest.raises(ValueError, match="--max-concurrent-requests"):
        make(["--max-concurrent-requests", "0"])
    with pytest.raises(ValueError, match="--http-read-timeout-s"):
        make(["--http-read-timeout-s", "0"])
    with pytest.raises(ValueError, match="--http-server must be 'fast' or 'uvicorn'"):
        make(["--http-server", "h2o"])
    assert make([]).http_server == "fast"
    assert make([], {"DYNAMOPY_HTTP_SERVER": "uvicorn"}).http_server == "uvicorn"
    cfg = make(["--peer-max-unauthenticated", "5", "--peer-buffer-bytes", "1000"])
    assert (cfg.peer_max_unauthenticated, cfg.peer_buffer_bytes, cfg.insecure) == (5, 1000, False)
