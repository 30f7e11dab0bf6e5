"""The mutation command's report: one score line per module, equivalents left out only in
the last figure (python -m dynamopy.benchlib.mutation; mutmut itself is not needed here)."""

from dynamopy.benchlib import mutation


def test_mutants_are_grouped_by_the_module_they_mutate():
    assert mutation._module("ring.claim.x__walk__mutmut_4") == "ring.claim"
    assert mutation._module("dynamopy.core.versions.xǁHybridClockǁobserve__mutmut_1") == \
        "dynamopy.core.versions"
    assert mutation._prefixes(["ring/", "dynamopy/core/paxos/acceptor.py"]) == \
        ("ring.", "dynamopy.core.paxos.acceptor")


def test_report_prints_a_score_per_module_and_a_total():
    equivalent = next(iter(name for name in mutation.EQUIVALENT if name.startswith("ring.claim.")))
    rows = [("ring.claim.x_a__mutmut_1", "killed"), ("ring.claim.x_a__mutmut_2", "killed"),
            ("ring.claim.x_a__mutmut_3", "timeout"), (equivalent, "survived"),
            ("ring.ring.x_b__mutmut_1", "killed"), ("ring.ring.x_b__mutmut_2", "survived"),
            ("ring.ring.x_b__mutmut_3", "not checked")]
    lines = mutation.report(rows).splitlines()
    assert lines[0].split()[:3] == ["module", "mutants", "killed"]
    claim = lines[1].split()
    assert claim[:8] == ["ring.claim", "4", "2", "1", "1", "0", "1", "50.0%"]
    assert claim[8:] == ["75.0%", "100.0%"]  # timeouts as killed; then without the equivalent
    assert lines[2].split() == ["ring.ring", "3", "1", "1", "0", "0", "0", "50.0%", "50.0%", "50.0%"]
    assert lines[3].split()[:3] == ["total", "7", "3"] and lines[3].split()[7] == "50.0%"
    # an equivalent that timed out is left out once, not also counted as killed
    lines = mutation.report([("ring.claim.x_a__mutmut_1", "killed"), (equivalent, "timeout")]).splitlines()
    assert lines[1].split()[-3:] == ["50.0%", "100.0%", "100.0%"]


def test_a_workdir_is_reused_only_for_the_paths_it_was_made_for(tmp_path):
    work = str(tmp_path / "w")
    assert mutation.claim_workdir(work, ["dynamopy/core/quorum.py"]) is None
    assert mutation.claim_workdir(work, ["dynamopy/core/quorum.py"]) is None
    error = mutation.claim_workdir(work, ["dynamopy/core/records.py"])
    assert error == (f"{work} was made for --paths dynamopy/core/quorum.py; use another "
                     "--workdir for --paths dynamopy/core/records.py")


def test_an_equivalent_not_checked_in_this_run_is_not_left_out_twice():
    equivalent = next(iter(name for name in mutation.EQUIVALENT if name.startswith("ring.claim.")))
    rows = [("ring.claim.x_a__mutmut_1", "killed"), (equivalent, "not checked")]
    assert mutation.report(rows).splitlines()[1].split()[-4:] == ["0", "100.0%", "100.0%", "100.0%"]


def test_a_rerun_of_survivors_keeps_the_earlier_status_of_every_other_mutant(tmp_path):
    before = {"m.x_a__mutmut_1": "killed", "m.x_a__mutmut_2": "survived",
              "m.x_a__mutmut_3": "survived", "m.x_a__mutmut_4": "no tests"}
    # mutmut was asked for 2 and 4 only and says "not checked" for every other mutant
    after = [("m.x_a__mutmut_1", "not checked"), ("m.x_a__mutmut_2", "killed"),
             ("m.x_a__mutmut_3", "not checked"), ("m.x_a__mutmut_4", "survived"),
             ("m.x_a__mutmut_5", "not checked")]
    merged = mutation.merge_rerun(before, after, {"m.x_a__mutmut_2", "m.x_a__mutmut_4"})
    assert merged == [("m.x_a__mutmut_1", "killed"), ("m.x_a__mutmut_2", "killed"),
                      ("m.x_a__mutmut_3", "survived"), ("m.x_a__mutmut_4", "survived"),
                      ("m.x_a__mutmut_5", "not checked")]
    assert mutation.report(merged).splitlines()[1].split()[1:5] == ["5", "2", "2", "0"]
    assert mutation.load_statuses(str(tmp_path)) == {}
