"""``dynamopy serve``'s settings (dynamopy/config.py): a value the node cannot run with is a
one-line error at start-up (exit 2), never a node that starts and then fails every request,
never becomes ready, or listens somewhere else than asked."""

import argparse

import pytest

from dynamopy.config import add_arguments, resolve


def build_config(argv, environ=None):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve(p.parse_args(argv), environ or {})


@pytest.mark.parametrize("argv", [
    ["--anti-entropy-interval-s", "nan"], ["--tombstone-grace-s", "inf"],
    ["--hint-window-s", "nan"], ["--request-timeout-s", "inf"],
    ["--join-timeout-s", "nan"], ["--http-read-timeout-s", "inf"],
    ["--metadata-group-replace-after-s", "infinity"]])
def test_a_number_that_is_not_finite_is_refused_at_start_up(argv):
    """Found by a user's bad input (session 13): `--anti-entropy-interval-s nan` or
    `--tombstone-grace-s inf` started a node whose bootstrap then failed for ever on its own
    500s (NaN is not JSON), never ready; the rest were taken as they came."""
    with pytest.raises(ValueError, match="finite") as e:
        build_config(argv)
    assert argv[0] in str(e.value)


def test_the_env_var_is_checked_as_the_flag_is():
    with pytest.raises(ValueError, match="--tombstone-grace-s.*finite"):
        build_config([], {"DYNAMOPY_TOMBSTONE_GRACE_S": "inf"})


def test_a_value_that_is_not_a_number_names_the_flag_and_what_it_wants():
    with pytest.raises(ValueError) as e:
        build_config(["--port", "abc"])
    assert str(e.value) == "--port: 'abc' is not an integer"
    with pytest.raises(ValueError) as e:
        build_config(["--request-timeout-s", "soon"])
    assert str(e.value) == "--request-timeout-s: 'soon' is not a number"


@pytest.mark.parametrize("argv, flag", [
    (["--port", "70000"], "--port"), (["--port", "-1"], "--port"), (["--port", "0"], "--port"),
    (["--peer-port", "65536"], "--peer-port"), (["--port", "65000"], "--peer-port")])
def test_a_port_outside_1_to_65535_is_refused_at_start_up(argv, flag):
    """Found by a user's bad input (session 13): `--port 70000` started a node that said
    "http http://127.0.0.1:70000 peer 127.0.0.1:71000", and `--port -1` failed inside
    uvicorn ("Servname not supported for ai_socktype", exit 3). The default peer port is
    the HTTP port + 1000, so --port 65000 needs a --peer-port of its own."""
    with pytest.raises(ValueError, match="outside 1..65535") as e:
        build_config(argv)
    assert str(e.value).startswith(flag), e.value


def test_the_highest_ports_are_taken():
    cfg = build_config(["--port", "64535"])
    assert (cfg.port, cfg.peer_port) == (64535, 65535)
    cfg = build_config(["--port", "65535", "--peer-port", "1"])
    assert (cfg.port, cfg.peer_port) == (65535, 1)


@pytest.mark.parametrize("value", ["-1", "0"])
def test_a_request_timeout_that_is_not_positive_is_refused_at_start_up(value):
    """Found by a user's bad input (session 13): `--request-timeout-s -1` started a node
    whose every write answered 503 quorum_unavailable ("... within -1.0s; it may still be
    stored on some replicas") while storing it."""
    with pytest.raises(ValueError, match="--request-timeout-s must be positive"):
        build_config(["--request-timeout-s", value])


@pytest.mark.parametrize("argv, flag", [
    (["--seeds", "foo"], "--seeds"), (["--seeds", "http://127.0.0.1:8001,127.0.0.1:8002"], "--seeds"),
    (["--join", "localhost:8001"], "--join"), (["--join", "ftp://x:1"], "--join"),
    (["--join", "http://"], "--join"), (["--join", "http://[::1"], "--join")])
def test_a_seed_or_join_address_that_is_not_an_http_url_is_refused_at_start_up(argv, flag):
    """Found by a user's bad input (session 13): `--seeds foo` or `--join notaurl` started a
    node that retried for ever, logging "Request URL is missing an 'http://' or 'https://'
    protocol" a few times a second, never ready."""
    with pytest.raises(ValueError, match="http://HOST:PORT") as e:
        build_config(argv)
    assert str(e.value).startswith(flag + ": "), e.value


def test_seed_and_join_urls_are_taken_with_their_trailing_slash_dropped():
    cfg = build_config(["--seeds", "http://a:1/, https://b.example:2", "--join", "http://c:3/"])
    assert cfg.seeds == ("http://a:1", "https://b.example:2") and cfg.join == "http://c:3"


@pytest.mark.parametrize("join", ["http://127.0.0.1:19130", "http://localhost:19130/",
                                  "https://127.0.0.1:19130"])
def test_joining_through_itself_is_refused_at_start_up(join):
    """Found by a user's bad input (session 13): `serve --port 19130 --join
    http://127.0.0.1:19130` asked itself for the cluster for ever ("joining through
    http://127.0.0.1:19130 failed (.../cluster answered 503); retrying"), never ready."""
    with pytest.raises(ValueError, match="--join .* is this node itself"):
        build_config(["--port", "19130", "--join", join])


def test_joining_through_another_node_on_the_same_host_is_taken():
    cfg = build_config(["--port", "19130", "--join", "http://127.0.0.1:19131"])
    assert cfg.join == "http://127.0.0.1:19131"
    cfg = build_config(["--port", "8080", "--host", "10.0.0.5", "--cluster-secret", "s",
                        "--join", "http://10.0.0.6:8080"])
    assert cfg.join == "http://10.0.0.6:8080"
