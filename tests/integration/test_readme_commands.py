"""Every `python -m X` and `dynamopy X` the README names exists and answers `--help`.

The commands are read from the README's code (fenced blocks and inline code), so the test
follows whatever the README names; a command it names that does not exist fails here.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = os.path.join(os.path.dirname(sys.executable), "dynamopy")


def readme_code() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return "\n".join(blocks + spans)


def python_modules() -> list[str]:
    return sorted(set(re.findall(r"\bpython3? -m ([A-Za-z_][\w.]*)", readme_code())))


def dynamopy_commands() -> dict[str, set[str]]:
    """{command: the words that followed it} for every `dynamopy ...` in the README."""
    found: dict[str, set[str]] = {}
    # not `kubectl -n dynamopy create ...` (there dynamopy is the namespace)
    for words in re.findall(r"(?:^|(?<!-n)[\s/])dynamopy((?: [a-z][a-z-]*)+)", readme_code(),
                            re.M):
        first, *rest = words.split()
        found.setdefault(first, set()).update(rest[:1])
    return found


def answers_help(cmd: list[str]) -> str:
    # Plugin autoload off: `python -m pytest --help` then answers in well under a second
    # instead of importing every installed plugin (schemathesis, hypothesis) first; no other
    # command reads the variable.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run([*cmd, "--help"], capture_output=True, timeout=60, text=True, env=env)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), (cmd, out.stderr[-2000:])
    return out.stdout


def test_the_readme_names_commands():
    assert "dynamopy.bench" in python_modules()
    assert "up" in dynamopy_commands()["cluster"] and "put" in dynamopy_commands()


@pytest.mark.parametrize("module", python_modules())
def test_python_module_answers_help(module):
    answers_help([sys.executable, "-m", module])


@pytest.mark.parametrize("command", sorted(dynamopy_commands()))
def test_dynamopy_command_answers_help(command):
    listing = answers_help([SCRIPT, command])
    # a next word is a sub-command when the command lists it (`members join`), else an
    # argument (`put greeting hello`)
    for word in sorted(dynamopy_commands()[command]):
        if re.search(rf"^\s+{re.escape(word)}\s", listing, re.M):
            answers_help([SCRIPT, command, word])
