"""The README is part of the contract: its settings table and CI command stay in step."""

import pathlib
import re

from dynamopy.config import SETTINGS

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_readme_lists_every_setting_with_its_env_var():
    readme = (ROOT / "README.md").read_text()
    for s in SETTINGS:
        flag = "--" + s.name.replace("_", "-")
        env = "DYNAMOPY_" + s.name.upper()
        assert f"`{flag}`" in readme and f"`{env}`" in readme, s.name


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"# 2\. install and run the tests\n(.+)\n", readme).group(1).strip()
    ci_lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert block in ci_lines
