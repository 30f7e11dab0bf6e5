"""The benchmark scripts refuse a bad numeric flag before they start anything: argparse's
usage error naming the flag, exit status 2 (dynamopy/benchlib/argtypes.py). No servers: the
step after the flags are read (finding wrk and etcd, or running the bench) is replaced by
one that fails the test, so a flag that is accepted never starts a cluster here."""

import os

import pytest

from dynamopy import bench
from dynamopy.benchlib import drop_stall, loop_stalls, request_timeline, sync_stalls, vs_etcd


class _Started(Exception):
    pass


def _refuse_to_start(*args, **kwargs):
    raise _Started("the flags were accepted and the script went on to start its cluster")


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch):
    monkeypatch.setattr(sync_stalls, "ensure_tools", _refuse_to_start)
    monkeypatch.setattr(vs_etcd, "ensure_tools", _refuse_to_start)
    monkeypatch.setattr(request_timeline, "ensure_tools", _refuse_to_start)
    monkeypatch.setattr(bench, "run", _refuse_to_start)
    monkeypatch.setattr(loop_stalls, "measure", _refuse_to_start)
    monkeypatch.setattr(drop_stall, "Store", _refuse_to_start)


def _refused(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["--runs", "0"], "--runs"),
    (["--runs", "-3"], "--runs"),
    (["--runs", "two"], "--runs"),
    (["--seconds", "-1"], "--seconds"),
    (["--seconds", "0"], "--seconds"),
    (["--keys", "0"], "--keys"),
    (["--value-bytes", "0"], "--value-bytes"),
    (["--sample-ms", "0"], "--sample-ms"),
    (["--sample-ms", "nan"], "--sample-ms"),
])
def test_sync_stalls_refuses_a_bad_number(argv, flag, capsys):
    err = _refused(sync_stalls.main, argv, capsys)
    assert f"error: argument {flag}: must be" in err


@pytest.mark.parametrize("argv, flag", [
    (["--runs", "0"], "--runs"),
    (["--seconds", "0.5"], "--seconds"),
    (["--slow-ms", "0"], "--slow-ms"),
    (["--slow-ms", "inf"], "--slow-ms"),
    (["--top", "-1"], "--top"),
    (["--keys", "x"], "--keys"),
])
def test_request_timeline_refuses_a_bad_number(argv, flag, capsys):
    err = _refused(request_timeline.main, argv, capsys)
    assert f"error: argument {flag}: must be" in err


def test_request_timeline_takes_good_flags_to_the_run():
    with pytest.raises(_Started):
        request_timeline.main(["--runs", "1", "--seconds", "3", "--slow-ms", "50", "--top",
                               "2", "--vs-etcd-order", "--keep"])


@pytest.mark.parametrize("argv, flag", [
    (["--rounds", "0"], "--rounds"),
    (["--seconds", "-1"], "--seconds"),
    (["--seconds", "0.5"], "--seconds"),  # wrk runs whole seconds: 0.5 would run 1
    (["--warmup", "-1"], "--warmup"),
    (["--keys", "0"], "--keys"),
    (["--value-bytes", "0"], "--value-bytes"),
    (["--hold", "-2"], "--hold"),
    (["--quorums", "4/1"], "--quorums"),
    (["--quorums", "2/2,1/0"], "--quorums"),
    (["--quorums", "2-2"], "--quorums"),
    (["--quorums", "2/x"], "--quorums"),
    (["--stores", "etcd,dynmopy"], "--stores"),
    (["--work-dir", "/no/such/folder"], "--work-dir"),
])
def test_bench_vs_etcd_refuses_a_bad_value(argv, flag, capsys):
    err = _refused(bench.main, ["--vs-etcd", *argv], capsys)
    assert f"error: argument {flag}: " in err


@pytest.mark.parametrize("argv, says", [
    (["--together", "--stores", "etcd"], "--together drives etcd and dynamopy side by side"),
    (["--together", "--stores", "dynamopy,etcd"], "--together drives etcd and dynamopy"),
])
def test_vs_etcd_together_needs_both_stores(argv, says, capsys):
    assert bench.main(["--vs-etcd", *argv]) == 2  # refused before any store is started
    assert says in capsys.readouterr().err


def test_vs_etcd_together_refuses_a_machine_without_the_two_cores(monkeypatch, capsys):
    from dynamopy.benchlib import pinning
    monkeypatch.setattr(pinning, "usable_cpus", lambda: {0})
    assert bench.main(["--vs-etcd", "--together"]) == 2
    assert "pins the stores to cores (0, 1); this process may use only [0]" in \
        capsys.readouterr().err


def test_the_quorum_pairs_named_are_the_ones_driven():
    assert vs_etcd._args([]).quorums == [(2, 2), (1, 1)]  # the default
    args = vs_etcd._args(["--quorums", "3/1, 1/3", "--stores", "dynamopy", "--seconds", "1"])
    assert args.quorums == [(3, 1), (1, 3)] and args.stores == ["dynamopy"]
    assert args.seconds == 1.0 and args.work_dir is None
    assert vs_etcd._args(["--work-dir", "/dev/shm"]).work_dir == "/dev/shm"


@pytest.mark.parametrize("argv, flag", [
    (["--keys", "0"], "--keys"),
    (["--value-bytes", "-1"], "--value-bytes"),
    (["--inflight", "0"], "--inflight"),
    (["--driver-procs", "0"], "--driver-procs"),
    (["--seconds", "0"], "--seconds"),
    (["--get-ratio", "1.5"], "--get-ratio"),
    (["--nodes", "0"], "--nodes"),
])
def test_bench_refuses_a_bad_number(argv, flag, capsys):
    err = _refused(bench.main, argv, capsys)
    assert f"error: argument {flag}: must be" in err


def test_good_values_go_through_to_the_run():
    with pytest.raises(_Started):
        sync_stalls.main(["--runs", "1", "--seconds", "1", "--sample-ms", "20"])
    with pytest.raises(_Started):
        bench.main(["--vs-etcd", "--rounds", "1", "--quorums", "3/3", "--warmup", "0"])
    with pytest.raises(_Started):
        bench.main(["--vs-etcd", "--together", "--rounds", "1"])
    with pytest.raises(_Started):
        bench.main(["--seconds", "0.5", "--warmup", "0", "--get-ratio", "1", "--rate", "0"])


@pytest.mark.parametrize("argv, flag", [
    (["--keys", "0"], "--keys"),
    (["--held-fraction", "0"], "--held-fraction"),
    (["--held-fraction", "1.5"], "--held-fraction"),
    (["--load", "-1"], "--load"),
    (["--repeat", "0"], "--repeat"),
    (["--delivered", "-1"], "--delivered"),
])
def test_loop_stalls_refuses_a_bad_number(argv, flag, capsys):
    err = _refused(loop_stalls.main, argv, capsys)
    assert f"error: argument {flag}: must be" in err
    with pytest.raises(_Started):
        loop_stalls.main(["--held-fraction", "1", "--delivered", "0", "--repeat", "1"])


@pytest.mark.parametrize("argv, flag", [
    (["--keys", "0"], "--keys"),
    (["--drop-share", "1"], "--drop-share"),
    (["--drop-share", "nan"], "--drop-share"),
    (["--ranges", "-1"], "--ranges"),
    (["--inflight", "0"], "--inflight"),
    (["--chunk", "0"], "--chunk"),
])
def test_drop_stall_refuses_a_bad_number(argv, flag, capsys):
    err = _refused(drop_stall.main, argv, capsys)
    assert f"error: argument {flag}: " in err


def test_drop_stall_takes_good_flags_to_the_run(monkeypatch):
    from dynamopy.storage import group_commit
    monkeypatch.setattr(group_commit, "DROP_CHUNK", group_commit.DROP_CHUNK)  # restored after
    with pytest.raises(_Started):
        drop_stall.main(["--keys", "10", "--drop-share", "0.5", "--chunk", "7"])
    assert group_commit.DROP_CHUNK == 7


def test_vs_etcd_puts_both_stores_data_under_the_work_dir(monkeypatch, tmp_path):
    """``--work-dir DIR``: the stores' data folders are made inside DIR (and removed after)."""
    made: list[str] = []

    def store(kind):
        def start(*args, data_dir=None, **kwargs):
            made.append((kind, data_dir if data_dir is not None else args[1]))
            raise _Started(kind)
        return start
    monkeypatch.setattr(vs_etcd, "ensure_tools", lambda: None)
    monkeypatch.setattr(vs_etcd, "LocalCluster", store("dynamopy"))
    monkeypatch.setattr(vs_etcd, "EtcdCluster", store("etcd"))
    with pytest.raises(_Started):
        vs_etcd.main(["--work-dir", str(tmp_path), "--stores", "etcd"])
    with pytest.raises(_Started):
        vs_etcd.main(["--work-dir", str(tmp_path), "--stores", "dynamopy"])
    assert [kind for kind, _ in made] == ["etcd", "dynamopy"]
    for _kind, data_dir in made:
        assert os.path.commonpath([data_dir, str(tmp_path)]) == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the run's folder is removed when it ends
