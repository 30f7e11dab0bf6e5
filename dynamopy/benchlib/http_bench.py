"""CPU per request of a node's HTTP layer alone, ``--http-server fast`` vs ``uvicorn``.

``python -m dynamopy.benchlib.http_bench [--seconds S] [--rounds K]``

For each mode, a server process is built as ``dynamopy serve`` builds its HTTP port (the
same protocol class from ``cli.serve.http_protocol``, the same ``RequestLimits`` ->
``DataFastPath`` ASGI chain and ``KvEndpoint``), but with stand-in data handlers that answer
at once (a GET: 1 KiB value with an ETag; a PUT: reads the body, answers the JSON a write
answers), so everything measured is HTTP parsing, the request cycle, the ASGI layers or the
raw adapter, and the socket writes. wrk drives it (``-t1 -c32``, 50/50 GET/PUT of 1 KiB over
200 keys) and the server's CPU time (``/proc``) over the measured window is divided by the
answers. CPU time moves much less than ops/s on a busy machine, but is still only an
estimate there. Prints a line per run and the per-mode ranges; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

from dynamopy.benchlib.procstat import process_cpu_s
from dynamopy.benchlib.vs_etcd import lua_dynamopy, run_wrk
from dynamopy.benchlib.vs_etcd_report import parse_wrk


class _StubHandlers:
    """``DataHandlers``' interface, answering at once (module docstring)."""

    def __init__(self) -> None:
        cfg = types.SimpleNamespace(max_value_bytes=1024 * 1024)
        self.node = types.SimpleNamespace(config=cfg)
        self.value = b"v" * 1024

    async def get(self, key, query, headers):
        from dynamopy.api.data import Reply
        return Reply(200, self.value, "application/octet-stream", etag=1234567890123)

    async def put(self, key, query, headers, read_body):
        from dynamopy.api.data import Reply
        body = await read_body()
        return Reply(200, json.dumps({"key": key, "version": len(body), "acks": 2}).encode(),
                     etag=1234567890123)

    async def delete(self, key, query, headers):
        return await self.put(key, query, headers, None)


async def _serve(mode: str, port: int) -> None:
    import uvicorn

    from dynamopy.api.fastpath import DataFastPath
    from dynamopy.api.http_limits import RequestLimits
    from dynamopy.api.kv_protocol import KvEndpoint
    from dynamopy.cli.serve import http_protocol

    async def not_found(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handlers = _StubHandlers()
    app = RequestLimits(DataFastPath(not_found, handlers), max_concurrent_requests=1024,
                        body_buffer_bytes=64 << 20, max_value_bytes=1 << 20)
    app.kv_endpoint = KvEndpoint(handlers, app, "")
    config = types.SimpleNamespace(http_server=mode, http_read_timeout_s=15.0,
                                   max_value_bytes=1 << 20)
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="none", lifespan="off", access_log=False,
        log_level="warning", server_header=False, date_header=False, proxy_headers=False,
        http=http_protocol(config, app, None)))
    await server.serve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server on port {port} did not start")


def _one(mode: str, seconds: float, work_dir: str) -> tuple[float, float]:
    """(answers/s, CPU µs per answer) of one server process in ``mode``."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dynamopy.benchlib.http_bench", "--serve",
                             mode, "--port", str(port)], start_new_session=True)
    try:
        _wait_port(port)
        script = lua_dynamopy([port], False, 2, 2, 200, 1024, "b")
        url = f"http://127.0.0.1:{port}"
        run_wrk(url, script, 1, ("-t1", "-c32"), work_dir)          # warm-up
        cpu0 = process_cpu_s(proc.pid)
        out = run_wrk(url, script, seconds, ("-t1", "-c32"), work_dir)
        cpu = process_cpu_s(proc.pid) - cpu0
        run = parse_wrk(out, mode, "one", 0)
        if run.non2xx:
            raise RuntimeError(f"{run.non2xx} non-2xx answers in mode {mode}")
        return run.ops, cpu / max(1, run.requests) * 1e6
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.http_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured s per run (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="A B rounds (default 3)")
    p.add_argument("--serve", choices=("fast", "uvicorn"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        import uvloop
        uvloop.run(_serve(args.serve, args.port))
        return 0
    results: dict[str, list[tuple[float, float]]] = {"uvicorn": [], "fast": []}
    with tempfile.TemporaryDirectory() as work_dir:
        for r in range(1, args.rounds + 1):
            for mode in results:
                ops, us = _one(mode, args.seconds, work_dir)
                results[mode].append((ops, us))
                print(f"round {r} {mode:8s} {ops:8.0f} answers/s  {us:6.1f} µs CPU/answer",
                      flush=True)
    for mode, rows in results.items():
        us = sorted(u for _, u in rows)
        print(f"{mode:8s} CPU µs/answer {us[0]:.1f}-{us[-1]:.1f} (median {us[len(us) // 2]:.1f})")
    pairs = [f"{f[1] / u[1]:.2f}" for u, f in zip(results["uvicorn"], results["fast"])]
    print("fast/uvicorn CPU per answer, same round: " + ", ".join(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
