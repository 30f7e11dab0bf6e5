"""``--http-server`` picks the HTTP protocol class of the node's port (cli/serve.py)."""

import argparse
import types

from dynamopy.api.http_limits import RequestLimits
from dynamopy.api.kv_protocol import KvEndpoint
from dynamopy.cli.serve import http_protocol
from dynamopy.config import add_arguments, resolve


def build_config(argv, environ):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve(p.parse_args(argv), environ)


def _app():
    node = types.SimpleNamespace(config=types.SimpleNamespace(max_value_bytes=1024))
    limits = RequestLimits(None, max_concurrent_requests=4, body_buffer_bytes=4096,
                           max_value_bytes=1024)
    limits.kv_endpoint = KvEndpoint(types.SimpleNamespace(node=node), limits, "")
    return limits


def test_fast_serves_kv_without_asgi_and_uvicorn_sends_everything_through_asgi():
    fast = http_protocol(build_config([], {}), _app(), None)
    slow = http_protocol(build_config(["--http-server", "uvicorn"], {}), _app(), None)
    assert hasattr(fast, "_kv_cycle") and not hasattr(slow, "_kv_cycle")
    assert fast.__mro__[1] is not slow   # each call builds its own classes
    assert {c.__name__ for c in fast.__mro__} >= {"LimitedHttpProtocol", "HttpToolsProtocol"}
