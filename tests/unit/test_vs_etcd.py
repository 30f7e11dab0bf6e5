"""The pure parts of the etcd comparison (dynamopy/benchlib/vs_etcd_report.py, the scripts in
vs_etcd.py, and pinning.py): reading wrk's output and building the table with ratios. Running
the stores is the script's job, not a test's."""

import pytest

from dynamopy.benchlib.vs_etcd import lua_dynamopy, lua_etcd
from dynamopy.benchlib.vs_etcd_report import ETCD_STORE, Run, build_table, parse_wrk

WRK_OUT = """Running 10s test @ http://127.0.0.1:18001
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    22.71ms   10.02ms 181.22ms   80.01%
    Req/Sec     2.85k   312.49     3.40k    71.00%
  28410 requests in 10.01s, 18.97MB read
  Non-2xx or 3xx responses: 10
RESULT requests=28410 duration_us=10010000 p50_us=20500 p99_us=61234 max_us=181220 non2xx=10 connect=0 read=1 write=0 timeout=2
Requests/sec:   2838.16
"""


def test_parse_wrk_reads_the_result_line_and_counts_only_2xx_as_ops():
    run = parse_wrk(WRK_OUT, "dynamopy R=2,W=2", "one", 1)
    assert run.requests == 28410 and run.non2xx == 10 and run.socket_errors == 3
    assert run.ops == pytest.approx((28410 - 10) / 10.01)
    assert (run.p50_ms, run.p99_ms, run.max_ms) == (20.5, 61.234, 181.22)


def test_parse_wrk_without_a_result_line_is_an_error():
    with pytest.raises(ValueError, match="no RESULT line"):
        parse_wrk("unable to connect to 127.0.0.1:18001 Connection refused\n", "x", "one", 1)


def _run(store, endpoints, round_, ops, p99, non2xx=0):
    return Run(store, endpoints, round_, ops, p99 / 2, p99, p99 * 2, non2xx, 0, int(ops * 10))


def test_table_lists_every_run_and_ratios_against_etcd_of_the_same_round():
    runs = [_run(ETCD_STORE, "one", 1, 4000, 40), _run("dynamopy R=2,W=2", "one", 1, 2000, 100),
            _run(ETCD_STORE, "one", 2, 2000, 50), _run("dynamopy R=2,W=2", "one", 2, 3000, 90, 4),
            _run(ETCD_STORE, "all", 1, 3000, 60), _run("dynamopy R=2,W=2", "all", 1, 6000, 30)]
    table = build_table(runs)
    rows, summary = table.split("\n\n")
    assert len(rows.splitlines()) == 1 + len(runs)
    lines = {tuple(line.split()[:3]): line.split() for line in summary.splitlines()[1:]}
    one = lines[("one", "dynamopy", "R=2,W=2")]
    # ratios per round: 2000/4000 = 0.50 and 3000/2000 = 1.50; ranges over rounds
    # and p99 over etcd's: 100/40 = 2.50, 90/50 = 1.80
    assert one[3:] == ["2000-3000", "90-100", "0.50-1.50", "1.80-2.50", "4"]
    assert lines[("one", "etcd", "3.4")][4:] == ["40-50", "-", "-", "0"]
    assert lines[("all", "dynamopy", "R=2,W=2")][3:] == ["6000", "30", "2.00", "0.50", "0"]


def test_together_each_setting_is_compared_with_the_etcd_run_driven_beside_it():
    e22, e11 = _run(ETCD_STORE, "one", 1, 1000, 200), _run(ETCD_STORE, "one", 1, 500, 400)
    e22.beside, e11.beside = "dynamopy R=2,W=2", "dynamopy R=1,W=1"
    runs = [e22, _run("dynamopy R=2,W=2", "one", 1, 1500, 100),
            e11, _run("dynamopy R=1,W=1", "one", 1, 2000, 100)]
    rows, summary = build_table(runs).split("\n\n")
    assert [line.split("|")[1].split()[0] for line in rows.splitlines() if "|" in line] == [
        "R=2,W=2", "R=1,W=1"]  # etcd's rows name the setting driven beside them
    lines = {tuple(line.split()[:3]): line.split() for line in summary.splitlines()[1:]}
    # R=2,W=2 against the etcd run beside it (1000 ops/s, p99 200), not against the other
    assert lines[("one", "dynamopy", "R=2,W=2")][5:7] == ["1.50", "0.50"]
    assert lines[("one", "dynamopy", "R=1,W=1")][5:7] == ["4.00", "0.25"]


def test_scripts_drive_every_key_with_both_operations_and_spread_only_when_asked():
    dyn = lua_dynamopy([1, 2, 3], False, 2, 1, 2000, 1024, "bench-")
    assert '"/kv/bench-" .. i .. "?r=2"' in dyn and '"?w=1"' in dyn and "for i = 0, 1999" in dyn
    assert "local SPREAD = false" in dyn
    etcd = lua_etcd([4, 5, 6], True, 3, 1024, "k")
    assert '{"azA=","azE=","azI="}' in etcd and "local SPREAD = true" in etcd  # base64 k0..k2
    assert "/v3/kv/range" in etcd and "/v3/kv/put" in etcd and "local PORTS = {4, 5, 6}" in etcd


def test_new_code_is_compared_with_the_baseline_of_the_same_round_and_quorums():
    runs = [_run("baseline R=2,W=2", "one", 1, 2000, 100), _run("dynamopy R=2,W=2", "one", 1, 3000, 50),
            _run("baseline R=1,W=1", "one", 1, 4000, 20), _run("dynamopy R=1,W=1", "one", 1, 4000, 40)]
    tail = build_table(runs).split("new code over baseline")[1].splitlines()[1:]
    assert [line.split(":")[1].strip() for line in tail] == ["1.50x ops/s, 0.50x p99",
                                                             "1.00x ops/s, 2.00x p99"]


def test_process_health_line_from_metrics_text():
    from dynamopy.benchlib.vs_etcd_report import process_health
    text = """dynamopy_gc_pause_seconds_count{generation="0"} 3.0
dynamopy_gc_pause_seconds_sum{generation="0"} 0.012
dynamopy_gc_pause_seconds_count{generation="2"} 1.0
dynamopy_gc_pause_seconds_sum{generation="2"} 0.2
dynamopy_event_loop_lag_seconds_bucket{le="0.05"} 90.0
dynamopy_event_loop_lag_seconds_bucket{le="0.2"} 98.0
dynamopy_event_loop_lag_seconds_bucket{le="+Inf"} 100.0
dynamopy_storage_sync_seconds_bucket{le="0.05"} 40.0
dynamopy_storage_sync_seconds_bucket{le="0.2"} 49.0
dynamopy_storage_sync_seconds_bucket{le="+Inf"} 50.0
"""
    assert process_health(text) == (
        "GC: 4 pauses, 212 ms in all; event-loop lag over 50 ms 10 times, over 200 ms 2 times "
        "(of 100 ticks); synced batches over 50 ms 10, over 200 ms 1 (of 50)")
    assert process_health("dynamopy_requests_total 3.0\n") is None


def test_each_run_gets_what_it_added_to_each_nodes_tail_counters():
    from dynamopy.benchlib.vs_etcd_report import health_counts, tail_line

    def metrics(gc, gc_s, lag_over, sync_over, slow_answers=0):
        return f"""dynamopy_gc_pause_seconds_count{{generation="0"}} {gc}
dynamopy_gc_pause_seconds_sum{{generation="0"}} {gc_s}
dynamopy_event_loop_lag_seconds_bucket{{le="0.05"}} {100 - lag_over}
dynamopy_event_loop_lag_seconds_bucket{{le="+Inf"}} 100.0
dynamopy_storage_sync_seconds_bucket{{le="0.05"}} {50 - sync_over}
dynamopy_storage_sync_seconds_bucket{{le="+Inf"}} 50.0
dynamopy_request_seconds_bucket{{le="0.2",outcome="ok",route="kv_put"}} {900 - slow_answers}
dynamopy_request_seconds_bucket{{le="+Inf",outcome="ok",route="kv_put"}} 900.0
dynamopy_request_seconds_bucket{{le="0.2",outcome="ok",route="kv_get"}} 1000.0
dynamopy_request_seconds_bucket{{le="+Inf",outcome="ok",route="kv_get"}} 1000.0
"""
    before = [health_counts(metrics(1, 0.01, 0, 2)), health_counts(metrics(0, 0, 0, 0, 3)),
              None]
    after = [health_counts(metrics(3, 0.05, 1, 2)), health_counts(metrics(0, 0, 0, 5, 24)),
             health_counts(metrics(0, 0, 0, 0))]
    assert tail_line(before, after) == (
        "node1 gc 2 (40 ms) lag>50ms 1 sync>50ms 0 answered>200ms 0; "
        "node2 gc 0 (0 ms) lag>50ms 0 sync>50ms 5 answered>200ms 21; node3 -")
    assert health_counts("dynamopy_requests_total 3.0\n") is None


def test_the_baseline_cluster_runs_the_code_in_its_source_dir_even_from_a_checkout(tmp_path):
    """Regression: run from a checkout, ``python -m dynamopy`` found the checkout's package
    first (the working directory leads sys.path), so the "baseline" ran the new code."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dynamopy.benchlib.vs_etcd import SourceCluster

    pkg = tmp_path / "src" / "dynamopy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("print('baseline code')\n")
    cluster = SourceCluster(str(tmp_path / "src"), 3, 18001, data_dir=str(tmp_path / "d"))
    checkout = Path(__file__).resolve().parents[2]            # holds the new dynamopy
    out = subprocess.run([sys.executable, "-m", "dynamopy"], cwd=checkout, timeout=30,
                         env={**os.environ, **cluster.launch.env}, capture_output=True,
                         text=True)
    assert out.stdout.strip() == "baseline code", out.stderr[-500:]


def test_main_thread_cpu_leaves_out_the_other_threads():
    """The per-thread split the bench prints: a thread that burns CPU while the main thread
    sleeps shows in the process's CPU time and not in the main thread's."""
    import os
    import threading
    import time

    from dynamopy.benchlib.procstat import main_thread_cpu_s, process_cpu_s

    def spin():
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass

    pid = os.getpid()
    main0, all0 = main_thread_cpu_s(pid), process_cpu_s(pid)
    t = threading.Thread(target=spin)
    t.start()
    t.join()
    main1, all1 = main_thread_cpu_s(pid), process_cpu_s(pid)
    assert all1 - all0 >= 0.25
    assert main1 - main0 <= 0.1


def test_each_etcd_run_gets_its_members_slow_wal_fsyncs_and_commits():
    """The bench shows whether a stall hit etcd too: per member, what one run added to its
    WAL fsyncs and backend commits over 64 ms (etcd's own histograms)."""
    from dynamopy.benchlib.vs_etcd_report import etcd_health_counts, etcd_tail_line

    def metrics(wal_over, commit_over):
        return f"""etcd_disk_backend_commit_duration_seconds_bucket{{le="0.032"}} {9 - commit_over}
etcd_disk_backend_commit_duration_seconds_bucket{{le="0.064"}} {10 - commit_over}
etcd_disk_backend_commit_duration_seconds_bucket{{le="+Inf"}} 10
etcd_disk_backend_commit_duration_seconds_count 10
etcd_disk_wal_fsync_duration_seconds_bucket{{le="0.064"}} {40 - wal_over}
etcd_disk_wal_fsync_duration_seconds_bucket{{le="0.128"}} 40
etcd_disk_wal_fsync_duration_seconds_bucket{{le="+Inf"}} 40
etcd_disk_wal_fsync_duration_seconds_sum 0.5
"""
    before = [etcd_health_counts(metrics(1, 0)), etcd_health_counts(metrics(0, 0)), None]
    after = [etcd_health_counts(metrics(4, 2)), etcd_health_counts(metrics(0, 0)),
             etcd_health_counts(metrics(1, 1))]
    assert etcd_tail_line(before, after) == (
        "member1 wal fsync>64ms 3 backend commit>64ms 2; "
        "member2 wal fsync>64ms 0 backend commit>64ms 0; member3 -")
    assert etcd_health_counts("dynamopy_requests_total 3.0\n") is None


def test_written_bytes_count_what_the_process_wrote_to_disk(tmp_path):
    """The bench's "disk written KiB/op": a 2 MiB file written and fsynced by this process
    shows in its write_bytes; a gone process reads as None."""
    import os

    from dynamopy.benchlib.procstat import process_written_bytes

    before = process_written_bytes(os.getpid())
    with open(tmp_path / "f", "wb") as f:
        f.write(os.urandom(2 << 20))
        f.flush()
        os.fsync(f.fileno())
    assert process_written_bytes(os.getpid()) - before >= 2 << 20
    assert process_written_bytes(2 ** 22 + 7) is None   # above pid_max's default: no such PID


def test_run_pinned_runs_every_job_at_once_on_its_core_and_children_inherit_it():
    import os
    import subprocess
    import sys
    import threading

    from dynamopy.benchlib import pinning
    cpus = sorted(pinning.usable_cpus())
    if len(cpus) < 2:
        pytest.skip("needs two cores")
    both_started = threading.Barrier(2, timeout=10)  # a job run after the other would time out

    def job():
        both_started.wait()
        child = subprocess.run([sys.executable, "-c", "import os; print(sorted("
                                "os.sched_getaffinity(0)))"], capture_output=True, text=True)
        return sorted(os.sched_getaffinity(0)), child.stdout.strip()

    results = pinning.run_pinned([(cpus[0], job, ()), (cpus[1], job, ())])
    assert results == [([cpus[0]], f"[{cpus[0]}]"), ([cpus[1]], f"[{cpus[1]}]")]
    assert os.sched_getaffinity(0) == set(cpus)  # the caller's own thread is left alone


def test_run_pinned_raises_what_a_job_raised():
    from dynamopy.benchlib import pinning
    cpu = min(pinning.usable_cpus())

    def boom():
        raise RuntimeError("wrk overran")
    with pytest.raises(RuntimeError, match="wrk overran"):
        pinning.run_pinned([(cpu, boom, ()), (cpu, lambda: 1, ())])


def test_pin_processes_pins_every_thread_of_a_running_process():
    import os
    import subprocess
    import sys

    from dynamopy.benchlib import pinning
    cpus = sorted(pinning.usable_cpus())
    code = ("import threading, time\n"
            "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
            "print('ready', flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        pinning.pin_processes([proc.pid], cpus[-1])
        tids = os.listdir(f"/proc/{proc.pid}/task")
        assert len(tids) == 2
        assert all(os.sched_getaffinity(int(t)) == {cpus[-1]} for t in tids)
    finally:
        proc.kill()
        proc.wait(10)
