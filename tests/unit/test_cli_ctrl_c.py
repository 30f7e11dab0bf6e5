"""Found by a user (session 13): Ctrl-C in the first quarter second of `dynamopy serve` or
`dynamopy cluster up` printed the traceback of the import under way (and the process died
of SIGINT instead of exiting 130). A Ctrl-C at start-up exits 130 with nothing on stderr, as
a later one does.

The Ctrl-C is made to land at a known point: an import hook raises KeyboardInterrupt (what
Python's SIGINT handler raises) when the command imports httpx, or the serve module."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HOOK = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
        return None
sys.meta_path.insert(0, CtrlC())
sys.argv = ["dynamopy", *{argv!r}]
"""

# how `python -m dynamopy` runs, and how the installed `dynamopy` script does
ENTRIES = {"python -m dynamopy": "import runpy; runpy.run_module('dynamopy', "
                                 "run_name='__main__', alter_sys=True)",
           "the dynamopy script": "from dynamopy.cli import main; sys.exit(main())"}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("module,argv", [
    ("httpx", ["serve", "--port", "1"]),              # dynamopy.cli's own imports
    ("httpx", ["cluster", "up", "--nodes", "1"]),
    ("dynamopy.cli.serve", ["serve", "--port", "1"]),  # what the command imports later
])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(entry, module, argv, tmp_path):
    code = HOOK.format(module=module, argv=argv) + ENTRIES[entry]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT}, timeout=60)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert proc.stderr == "", proc.stderr
