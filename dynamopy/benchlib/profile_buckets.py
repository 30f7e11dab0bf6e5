"""Where a node's CPU goes, from py-spy's raw output: ``python -m
dynamopy.benchlib.profile_buckets node1.txt [node2.txt ...]``.

Input: ``py-spy record --native --threads -f raw -o nodeN.txt --pid PID`` (one line per
distinct stack: ``thread (tid): name;frame;...;frame COUNT``). Each sample goes in one bucket
by its innermost recognisable frame (system calls by their caller, then the GC, then the
first frame, innermost first, that a rule names), per thread: the event-loop thread
(``MainThread``) and the group-commit thread. Idle samples are dropped: py-spy counts a thread
waiting on a lock or in ``epoll_wait`` as active. A sample of the loop thread waiting for the
GIL (``pthread_cond_wait``/``timedwait``) is its own bucket: the commit thread held it.
Prints percentages; asserts nothing.

``--roles`` prints, per node and for the three nodes added up, where the loop thread's CPU
goes by *origin*: the outermost Python frame the event loop ran (an HTTP request, a peer
request arriving at the replica side, a peer reply arriving at the coordinator side, a
callback settling a peer call, the group-commit hand-off, a peer frame flush, ...), each
split by the innermost bucket above. Samples waiting for the GIL are left out (no CPU).
"""

from __future__ import annotations

import collections
import re
import sys
from typing import Iterable, Optional

RULES = [(bucket, re.compile(rx)) for bucket, rx in (
    ("asyncio tasks/futures (C)", r"_asynciomodule\.c|asyncio/(futures|tasks|events)\.py"),
    ("HTTP: httptools/uvicorn", r"httptools|uvicorn/"),
    ("ASGI fast path + limits", r"api/fastpath\.py|api/http_limits\.py|api/kv_protocol\.py"),
    ("data handlers", r"api/data\.py|api/errors\.py|api/methods\.py"),
    ("starlette/fastapi", r"starlette/|fastapi/"),
    ("JSON", r"json/|_json"),
    ("msgpack + framing", r"msgpack|peer/framing\.py"),
    ("peer client", r"peer/client\.py|peer/transport\.py"),
    ("peer server", r"peer/server\.py|peer/connection\.py|peer/limits\.py"),
    ("fan-out", r"node/fanout\.py"),
    ("coordinator", r"node/coordinator\.py"),
    ("quorum core / ring", r"dynamopy/core/|ring/"),
    ("replica", r"node/replica\.py"),
    ("group commit + store (Python)", r"storage/|plyvel"),
    ("metrics", r"prometheus|fast_metrics|node/metrics\.py"),
    ("other dynamopy", r"dynamopy/"),
    ("event loop (uvloop/libuv)", r"loop\.c|uvloop|\((core|linux|stream|tcp|loop-watcher)\.c|"
                                  r"asyncio/"),
)]


def bucket(frames: list[str]) -> Optional[str]:
    """The bucket of one sample (frames outermost first); None for an idle one."""
    inner = frames[-1]
    callers = [f for f in frames if "libc.so" not in f and "libpython" not in f]
    caller = callers[-1] if callers else ""
    tail = " ".join(frames[-3:])
    if ("SimpleQueue_get" in tail or "SimpleQueue_get" in caller
            or any(f.startswith("Condition.wait") for f in frames)
            or "uv__io_poll (linux.c:1452)" in caller or "epoll" in tail):
        return None
    if "pthread_cond" in tail or "take_gil" in tail:
        return "waiting for the GIL"
    if "libc.so" in inner or "libpython" in inner:
        if "try_write" in caller or "uv__write" in caller:
            return "socket send (syscall)"
        if "uv__read" in caller:
            return "socket recv (syscall)"
        if "Sync" in caller and "leveldb" in caller:
            return "fdatasync (LevelDB sync)"
        if "getpid" in inner:
            return "getpid (asyncio.get_running_loop on 3.11)"
        return "other system calls / libc"
    if "leveldb" in inner.lower():
        return "LevelDB (C++)"
    if any("gcmodule" in f or "gc_collect" in f for f in frames):
        return "cyclic garbage collector"
    for f in reversed(frames):
        for name, rx in RULES:
            if rx.search(f):
                return name
    return "interpreter (other)"


# The loop thread's samples by the first Python frame the event loop ran (its origin).
ROLES = [(role, re.compile(rx)) for role, rx in (
    ("HTTP answer write (coordinator)", r"^KvCycle\._send|^RequestResponseCycle\.send"),
    ("HTTP request: parse + coordinate (coordinator)",
     r"^KvCycle\.|LimitedHttpProtocol|^HttpToolsProtocol|^RequestResponseCycle"),
    ("replica: peer request in (decode, dispatch, get/put, reply)",
     r"^_ServerConnection\."),
    ("replica: ack after synced batch (encode, queue)", r"^_Reply\.|^_Stored\."),
    ("peer frames flushed (both sides)", r"^FramedProtocol\._flush"),
    ("coordinator: peer reply in (decode, settle)",
     r"^FramedProtocol\.data_received|^_ClientConnection\."),
    ("coordinator: call settled (callbacks, fan-out)",
     r"^_Settled\.|^_CallDone\.|^_PeerReport\.|^_GetReply\.|^_PutReply\.|^_TaskDone\.|"
     r"^FanOut|^_chain_future|^Coordinator\.|^_Timer"),
    ("group commit hand-off (loop side)", r"^GroupCommitter\."),
)]


def role(frames: list[str]) -> str:
    """The origin of one loop-thread sample (frames outermost first)."""
    start = next((i for i, f in enumerate(frames) if f.startswith("uv_run")), None)
    if start is None:
        return "outside the loop"
    py = [f for f in frames[start + 1:] if ".py:" in f]
    if not py:
        return "event loop + socket reads (C, no Python frame)"
    first = py[0]
    for name, rx in ROLES:
        if rx.search(first):
            return name
    return "background (detector, metadata log, timers, ...)"


def tally_roles(lines: Iterable[str]) -> dict[str, collections.Counter]:
    """Loop-thread CPU samples per origin per bucket (idle and GIL waits left out)."""
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not stack.startswith("thread") or "MainThread" not in stack.split(";")[0]:
            continue
        frames = stack.split(";")[1:]
        b = bucket(frames)
        if b is None or b == "waiting for the GIL":
            continue
        out[role(frames)][b] += int(count)
    return out


def print_roles(name: str, roles: dict[str, collections.Counter]) -> None:
    total = sum(sum(c.values()) for c in roles.values()) or 1
    print(f"== {name}: {total} loop-thread CPU samples, by origin (top buckets inside)")
    for r, c in sorted(roles.items(), key=lambda x: -sum(x[1].values())):
        n = sum(c.values())
        inner = ", ".join(f"{b} {100 * k / n:.0f}%" for b, k in c.most_common(4))
        print(f"  {100 * n / total:5.1f}%  {r}  [{inner}]")


def tally(lines: Iterable[str]) -> dict[str, collections.Counter]:
    """Samples per thread ("loop", "commit", other names) per bucket."""
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        m = re.match(r"thread \(\d+\): (.*)", frames[0])
        name = m.group(1) if m else frames[0]
        thread = ("loop" if name == "MainThread" else
                  "commit" if "group-commit" in name else name)
        b = bucket(frames[1:])
        if b is not None:
            out[thread][b] += int(count)
    return out


def main(paths: list[str]) -> None:
    if paths and paths[0] == "--roles":
        every: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for path in paths[1:]:
            with open(path) as f:
                roles = tally_roles(f)
            print_roles(path, roles)
            for r, c in roles.items():
                every[r].update(c)
        if len(paths) > 2:
            print_roles("all nodes", every)
        return
    for path in paths:
        with open(path) as f:
            threads = tally(f)
        sizes = {t: sum(c.values()) for t, c in threads.items()}
        print(f"== {path}: {sum(sizes.values())} busy samples; "
              + ", ".join(f"{t} {n}" for t, n in sorted(sizes.items(), key=lambda x: -x[1])))
        for t in ("loop", "commit"):
            total = sizes.get(t) or 1
            print(f"  -- {t} thread ({sizes.get(t, 0)})")
            for name, n in threads[t].most_common():
                print(f"     {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BrokenPipeError:  # piped into head
        pass
