"""Mutation testing of the pure core (and any other modules) with mutmut; prints the score.

    pip install -e '.[mutation]'
    python -m dynamopy.benchlib.mutation                       # ring/ and dynamopy/core/
    python -m dynamopy.benchlib.mutation --paths ring/moves.py dynamopy/core/quorum.py
    python -m dynamopy.benchlib.mutation --paths dynamopy/node/transfer.py \\
        --tests tests/unit/test_transfer.py

Not part of CI (a full run takes tens of minutes on 2 cores). Rules:

* The repository is copied to a scratch directory (``--workdir``, default a fresh temporary
  one) and mutmut runs there, so the worktree never holds ``mutants/`` or a mutmut config.
* mutmut runs each mutant against only the tests that executed the mutated function (it
  records that once, from a clean run of ``--tests``), forked from one warm process, niced.
* The test that checks ``ring`` imports only mmh3 and the standard library is deselected:
  mutmut's trampolines import mutmut into every mutated module, which it rightly refuses.
* Hypothesis runs derandomized (the same examples every run, so scores are reproducible)
  and without shrinking (a mutant only needs one failing example, and shrinking a slow
  property test is what made mutants of ``ring/claim.py`` time out), and the seeded Paxos
  schedules test runs 300 schedules instead of 1500; this profile is written into the
  scratch copy's ``tests/conftest.py`` only.
* A test that runs longer than ``--test-timeout`` seconds fails (pytest-timeout), so a
  mutant that loops forever is killed as the suite's own per-test timeout would kill it;
  a mutant whose tests together run longer than ``--timeout-multiplier`` times their clean
  duration (plus 1 s) is stopped and counted as a timeout.
* The score is printed per module: killed / (killed + survived + timeouts + suspicious +
  no tests), then with timeouts counted as killed, then also leaving out the survivors
  judged equivalent (``EQUIVALENT``, in ``mutation_equivalents.py``). Mutants that no test executes count as survived.
  Survivors and timeouts are printed with their diffs: each one is either a missing test
  or an equivalent mutant to be listed with a reason (or, for a timeout, a mutant that
  loops forever).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile

from dynamopy.benchlib.mutation_equivalents import EQUIVALENT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PATHS = ["ring/", "dynamopy/core/"]
DEFAULT_TESTS = ["tests/unit"]
DESELECT = ["tests/unit/test_ring.py::test_ring_imports_only_mmh3_and_the_standard_library"]

HYPOTHESIS_PROFILE = """
# written by dynamopy.benchlib.mutation into its scratch copy only
import os as _mutation_os

from hypothesis import Phase, settings as _mutation_settings

_mutation_os.environ.setdefault("DYNAMOPY_PAXOS_SCHEDULES", "300")

_mutation_settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate])
_mutation_settings.load_profile("mutation")
"""
COPY = ["ring", "dynamopy", "tests", "pyproject.toml", "README.md", ".ci"]
ALSO_COPY = ["README.md", ".ci/"]  # read by tests/unit/test_docs.py
STATUSES = "mutation-statuses.json"  # every mutant's status after the last run in a workdir


def _only_mutate(paths: list[str]) -> list[str]:
    """mutmut's ``only_mutate`` globs for files and directories given on the command line."""
    out = []
    for p in paths:
        p = p.rstrip("/")
        out.append(p if p.endswith(".py") else p + "/*")
    return out


def write_config(workdir: str, paths: list[str], tests: list[str],
                 timeout_multiplier: float, deselect: list[str] = ()) -> None:
    lines = ["[mutmut]", f"timeout_multiplier={timeout_multiplier}", "source_paths=", "    ring/", "    dynamopy/",
             "only_mutate=", *(f"    {p}" for p in _only_mutate(paths)),
             "also_copy=", *(f"    {p}" for p in ALSO_COPY),
             "pytest_add_cli_args_test_selection=", *(f"    {t}" for t in tests),
             "pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -q"]
    for d in [*DESELECT, *deselect]:
        lines += ["    --deselect", f"    {d}"]
    with open(os.path.join(workdir, "setup.cfg"), "w") as f:
        f.write("\n".join(lines) + "\n")


def copy_tree(workdir: str) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPY:
        src = os.path.join(ROOT, name)
        if not os.path.exists(src):
            continue
        dst = os.path.join(workdir, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    conftest = os.path.join("tests", "conftest.py")
    original = ""
    if os.path.exists(os.path.join(ROOT, conftest)):
        with open(os.path.join(ROOT, conftest)) as f:
            original = f.read()
    with open(os.path.join(workdir, conftest), "w") as f:
        f.write(original + HYPOTHESIS_PROFILE)


def claim_workdir(workdir: str, paths: list[str]) -> str | None:
    """Record which ``--paths`` a scratch directory is for; an error message if it was made
    for others (mutmut then keeps the old mutants and finds no test for the new ones)."""
    marker = os.path.join(workdir, "mutation-paths.txt")
    wanted = "\n".join(paths) + "\n"
    if os.path.exists(marker):
        with open(marker) as f:
            made_for = f.read()
        if made_for != wanted:
            return (f"{workdir} was made for --paths {' '.join(made_for.split())}; "
                    f"use another --workdir for --paths {' '.join(paths)}")
        return None
    os.makedirs(workdir, exist_ok=True)
    with open(marker, "w") as f:
        f.write(wanted)
    return None


def mutmut(workdir: str, *args: str, check: bool = True,
           test_timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = ["nice", "-n", "19", sys.executable, "-m", "mutmut", *args]
    env = {**os.environ, "PYTEST_TIMEOUT": str(test_timeout)}  # pytest-timeout, per test
    return subprocess.run(cmd, cwd=workdir, check=check, text=True, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def results(workdir: str, all_: bool = False) -> list[tuple[str, str]]:
    """(mutant name, status) of every mutant that was not killed (or of all, ``all_``)."""
    out = mutmut(workdir, "results", *(["--all", "true"] if all_ else [])).stdout
    rows = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            rows.append((name, status))
    return rows


def load_statuses(workdir: str) -> dict[str, str]:
    """Every mutant's status as of the last run in ``workdir`` (empty before the first)."""
    path = os.path.join(workdir, STATUSES)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def merge_rerun(before: dict[str, str], after: list[tuple[str, str]],
                rerun: set[str]) -> list[tuple[str, str]]:
    """The statuses after a ``--rerun-survivors`` run: mutmut marks every mutant it was not
    asked to test "not checked"; those keep the status of the run before."""
    return [(name, before.get(name, status) if status == "not checked" and name not in rerun
             else status) for name, status in after]


def _module(mutant: str) -> str:
    """``ring.claim.x__walk__mutmut_4`` -> ``ring.claim``."""
    head = mutant.split("__mutmut_")[0]
    return head.rsplit(".x", 1)[0] if ".x" in head else head


def _prefixes(paths: list[str]) -> tuple[str, ...]:
    """Module-name prefixes of the files and directories given as ``--paths``."""
    out = []
    for p in paths:
        p = p.rstrip("/")
        out.append(p[:-3].replace("/", ".") if p.endswith(".py") else p.replace("/", ".") + ".")
    return tuple(out)


def report(rows: list[tuple[str, str]]) -> str:
    """One score line per module and one for the total.

    score = killed / (every mutant but the skipped and unchecked ones); a timeout counts
    as not killed here (the second figure counts it as killed: a mutant that loops forever
    fails the suite's per-test timeout). ``eq`` survivors are in ``EQUIVALENT``; the last
    figure leaves them out."""
    by_module: dict[str, list[tuple[str, str]]] = {}
    for name, status in rows:
        by_module.setdefault(_module(name), []).append((name, status))
    lines = [f"{'module':34} {'mutants':>7} {'killed':>6} {'surv':>5} {'timeout':>7} "
             f"{'other':>5} {'eq':>4}   score  +timeouts  +t-eq"]

    def line(label: str, group: list[tuple[str, str]]) -> str:
        count = {k: sum(st == k for _, st in group) for k in ("killed", "survived", "timeout")}
        judged = [st for _, st in group if st not in ("skipped", "not checked")]
        other = len(judged) - sum(count.values())
        eq = sum(name in EQUIVALENT and st not in ("killed", "skipped", "not checked")
                 for name, st in group)
        eq_timeouts = sum(name in EQUIVALENT and st == "timeout" for name, st in group)
        n = len(judged)
        score = count["killed"] / n if n else 1.0
        with_timeouts = (count["killed"] + count["timeout"]) / n if n else 1.0
        without_eq = ((count["killed"] + count["timeout"] - eq_timeouts) / (n - eq)
                      if n > eq else 1.0)
        return (f"{label:34} {len(group):7} {count['killed']:6} {count['survived']:5} "
                f"{count['timeout']:7} {other:5} {eq:4}  {score:6.1%} {with_timeouts:8.1%}"
                f"  {without_eq:6.1%}")

    for module in sorted(by_module):
        lines.append(line(module, by_module[module]))
    if len(by_module) > 1:
        lines.append(line("total", rows))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dynamopy.benchlib.mutation",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--paths", nargs="+", default=DEFAULT_PATHS,
                    help=f"files or directories to mutate (default: {' '.join(DEFAULT_PATHS)})")
    ap.add_argument("--tests", nargs="+", default=DEFAULT_TESTS,
                    help=f"test files or directories to run (default: {' '.join(DEFAULT_TESTS)})")
    ap.add_argument("--deselect", nargs="+", default=[],
                    help="test ids to leave out (e.g. a slow property test whose seeded twin "
                         "checks the same property)")
    ap.add_argument("--max-children", type=int, default=1,
                    help="mutants tested at once (default: 1; the machine is shared)")
    ap.add_argument("--timeout-multiplier", type=float, default=5.0,
                    help="a mutant's tests may run this many times their clean duration "
                         "(plus 1 s) before it counts as a timeout (default: 5)")
    ap.add_argument("--test-timeout", type=float, default=120,
                    help="seconds one test may run before it fails (pytest-timeout; default: "
                         "120): a mutant that loops forever is killed by it, as the suite's "
                         "300 s timeout would, without waiting for --timeout-multiplier")
    ap.add_argument("--workdir", default=None,
                    help="scratch directory (default: a new temporary directory); reusing "
                         "one (with the same --paths) lets mutmut skip mutants whose code and "
                         "tests did not change")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="with --workdir of an earlier run: test only the mutants that survived "
                         "it and are not judged equivalent, against the current tests (new "
                         "tests are picked up)")
    ap.add_argument("--only", nargs="+", default=[], metavar="PATTERN",
                    help="test only the mutants whose names match these patterns (fnmatch, "
                         "e.g. 'dynamopy.node.coordinator.*_put_one__mutmut_*'); the others "
                         "keep their status from the earlier run in --workdir")
    ap.add_argument("--no-diffs", action="store_true", help="list survivors without diffs")
    args = ap.parse_args(argv)
    try:
        import mutmut as _  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="dynamopy-mutation-"))
    names: list[str] = []
    if args.rerun_survivors:
        if not os.path.isdir(os.path.join(workdir, "mutants")):
            print("--rerun-survivors needs the --workdir of an earlier run", file=sys.stderr)
            return 2
        before = load_statuses(workdir) or dict(results(workdir, all_=True))
        names = [name for name, status in before.items()
                 if status not in ("killed", "not checked", "skipped") and name not in EQUIVALENT]
    if args.only:
        before = load_statuses(workdir)
        names = list(args.only)
    error = claim_workdir(workdir, args.paths)
    if error:
        print(error, file=sys.stderr)
        return 2
    copy_tree(workdir)
    write_config(workdir, args.paths, args.tests, args.timeout_multiplier, args.deselect)
    print(f"mutating {' '.join(args.paths)} against {' '.join(args.tests)} in {workdir}"
          + (f" ({len(names)} earlier survivors only)" if args.rerun_survivors else ""),
          flush=True)
    if args.rerun_survivors and not names:
        print("no survivors to re-test")
    run = mutmut(workdir, "run", "--max-children", str(args.max_children), *names,
                 check=False, test_timeout=args.test_timeout) if names or not args.rerun_survivors else None
    if run is not None and run.returncode != 0:
        print(run.stdout[-4000:], file=sys.stderr)
        print(f"mutmut run failed with {run.returncode}", file=sys.stderr)
        return 1
    rows = results(workdir, all_=True)
    if args.only:
        rows = merge_rerun(before, rows, {n for n, _ in rows
                                          if any(fnmatch.fnmatch(n, p) for p in names)})
    elif args.rerun_survivors:
        rows = merge_rerun(before, rows, set(names))
    with open(os.path.join(workdir, STATUSES), "w") as f:
        json.dump(dict(rows), f)
    rows = [(name, status) for name, status in rows
            if _module(name).startswith(_prefixes(args.paths))]
    alive = [(name, status) for name, status in rows if status not in ("killed", "not checked")]
    print(report(rows))
    unchecked = sum(status == "not checked" for _, status in rows)
    if unchecked:
        print(f"({unchecked} mutants not checked in this workdir)")
    for name, status in alive:
        if name in EQUIVALENT:
            print(f"\n--- {status} (equivalent: {EQUIVALENT[name]}): {name}")
            continue
        print(f"\n--- {status}: {name}")
        if not args.no_diffs:
            print(mutmut(workdir, "show", name, check=False).stdout.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
