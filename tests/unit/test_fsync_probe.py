"""The disk probe (benchlib/fsync_probe.py): its stall counting, its overwrite mode staying
inside the preallocated file, its refusals, and a short real run that cleans up."""

import os
import threading
import time

import pytest

from dynamopy.benchlib import fsync_probe
from dynamopy.benchlib.fsync_probe import Writer, main, summarize


def test_a_stall_counts_as_device_wide_only_when_every_writer_ends_it_together():
    a = [(10.000, 0.120), (11.000, 0.001)]
    b = [(10.003, 0.118), (12.000, 0.090)]   # 12.000: only b was slow then
    c = [(9.998, 0.130)]
    r = summarize([a, b, c], seconds=2.0)
    assert r["slow"] == 4
    assert r["device_wide"] == 1
    assert r["syncs_per_s"] == pytest.approx(2.5)
    assert r["max_ms"] == pytest.approx(130.0)
    apart = summarize([a, [(10.020, 0.120)], c], seconds=2.0)   # 20 ms apart: not together
    assert apart["device_wide"] == 0


def test_overwrite_mode_stays_inside_its_file_and_append_grows(tmp_path):
    sizes = {}
    for mode in ("overwrite", "append"):
        stop = threading.Event()
        w = Writer(str(tmp_path / mode), mode, record_bytes=4096, span_bytes=3 * 4096,
                   rate=None, stop=stop)
        w.prepare()
        w.start()
        deadline = time.monotonic() + 10
        while len(w.syncs) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        w.join()
        assert len(w.syncs) >= 8
        sizes[mode] = os.path.getsize(w.path)
    assert sizes["overwrite"] == 3 * 4096
    assert sizes["append"] >= 8 * 4096


@pytest.mark.parametrize("flag", ["--seconds=0", "--rounds=-1", "--writers=0", "--rate=abc",
                                  "--flush-mib=0"])
def test_bad_numbers_are_refused_with_status_2(flag, capsys):
    with pytest.raises(SystemExit) as e:
        main([flag])
    assert e.value.code == 2
    assert flag.split("=")[0] in capsys.readouterr().err


def test_a_missing_directory_is_refused_with_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--dir", str(tmp_path / "nope")])
    assert e.value.code == 2
    assert "--dir" in capsys.readouterr().err


def test_a_short_run_prints_both_modes_and_leaves_nothing_behind(tmp_path, capsys):
    assert main(["--dir", str(tmp_path), "--seconds", "0.2", "--rounds", "1",
                 "--record-bytes", "4096", "--span-mib", "1", "--rate", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2].rstrip(":") for line in out] == list(fsync_probe.MODES)
    assert all("syncs/s" in line and "device-wide stalls" in line for line in out)
    assert os.listdir(tmp_path) == []
