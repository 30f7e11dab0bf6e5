"""The py-spy bucketing of docs/perf.md (dynamopy/benchlib/profile_buckets.py)."""

from dynamopy.benchlib.profile_buckets import tally

LOOP = "thread (1): MainThread;run (uvloop/__init__.py:92)"
LINES = [
    f"{LOOP};Coordinator.write (dynamopy/node/coordinator.py:90);physical_ms (dynamopy/core/versions.py:58) 3\n",
    f"{LOOP};Coordinator.read (dynamopy/node/coordinator.py:157);0x7f (libc.so.6) 1\n",
    f"{LOOP};UVStream__try_write (loop.c:10);write (libc.so.6) 4\n",
    f"{LOOP};uv__io_poll (linux.c:1452);epoll_pwait (libc.so.6) 50\n",
    f"{LOOP};take_gil (ceval_gil.h:1);pthread_cond_wait (libc.so.6) 2\n",
    "thread (2): group-commit-0;_queue_SimpleQueue_get_impl (_queuemodule.c:253);PyThread_acquire_lock_timed (libpython3.11.so.1.0) 70\n",
    "thread (2): group-commit-0;write (_plyvel.cpp:1);leveldb::DBImpl::Write (libleveldb.so);leveldb::PosixWritableFile::Sync (libleveldb.so);fdatasync (libc.so.6) 5\n",
]


def test_samples_land_in_their_bucket_and_idle_ones_are_dropped():
    threads = tally(LINES)
    assert dict(threads["loop"]) == {"quorum core / ring": 3, "other system calls / libc": 1,
                                     "socket send (syscall)": 4, "waiting for the GIL": 2}
    assert dict(threads["commit"]) == {"fdatasync (LevelDB sync)": 5}


def test_roles_sort_loop_samples_by_the_first_python_frame_the_loop_ran():
    from dynamopy.benchlib.profile_buckets import tally_roles

    loop = "thread (1): MainThread;run (uvloop/__init__.py:92);uv_run (core.c:452)"
    lines = [
        f"{loop};KvCycle.run_asgi (dynamopy/api/kv_protocol.py:134);Coordinator.read (dynamopy/node/coordinator.py:157) 3\n",
        f"{loop};KvCycle.run_asgi (dynamopy/api/kv_protocol.py:137);KvCycle._send (dynamopy/api/kv_protocol.py:194);UVStream__try_write (loop.c:1);write (libc.so.6) 2\n",
        f"{loop};_ServerConnection.data_received (dynamopy/peer/server.py:300);FrameDecoder.feed (dynamopy/peer/framing.py:120) 4\n",
        f"{loop};FramedProtocol._flush (dynamopy/peer/connection.py:110);UVStream__try_write (loop.c:1);write (libc.so.6) 5\n",
        f"{loop};_Settled.__call__ (dynamopy/peer/client.py:290);take_gil (ceval_gil.h:1);pthread_cond_wait (libc.so.6) 7\n",
        f"{loop};uv__io_poll (linux.c:1452);epoll_pwait (libc.so.6) 50\n",
        "thread (2): group-commit;fdatasync (libc.so.6) 9\n",
    ]
    roles = tally_roles(lines)
    assert {r: sum(c.values()) for r, c in roles.items()} == {
        "HTTP request: parse + coordinate (coordinator)": 5,
        "replica: peer request in (decode, dispatch, get/put, reply)": 4,
        "peer frames flushed (both sides)": 5,
    }
    assert roles["HTTP request: parse + coordinate (coordinator)"]["socket send (syscall)"] == 2
