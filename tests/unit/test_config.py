"""``dynamopy serve``'s settings (dynamopy/config.py): a value the node cannot run with is a
one-line error at start-up (exit 2), never a node that starts and then fails every request,
never becomes ready, or listens somewhere else than asked."""

import argparse

import pytest

from dynamopy.config import add_arguments, resolve


def build_config(argv, environ=None):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resolve(p.parse_args(argv), environ or {})


@pytest.mark.parametrize("argv", [
    ["--anti-entropy-interval-s", "nan"], ["--tombstone-grace-s", "inf"],
    ["--hint-window-s", "nan"], ["--request-timeout-s", "inf"],
    ["--join-timeout-s", "nan"], ["--http-read-timeout-s", "inf"],
    ["--metadata-group-replace-after-s", "infinity"]])
def test_a_number_that_is_not_finite_is_refused_at_start_up(argv):
    """Found by a user's bad input (session 13): `--anti-entropy-interval-s nan` or
    `--tombstone-grace-s inf` started a node whose bootstrap then failed for ever on its own
    500s (NaN is not JSON), never ready; the rest were taken as they came."""
    with pytest.raises(ValueError, match="finite") as e:
        build_config(argv)
    assert argv[0] in str(e.value)


def test_the_env_var_is_checked_as_the_flag_is():
    with pytest.raises(ValueError, match="--tombstone-grace-s.*finite"):
        build_config([], {"DYNAMOPY_TOMBSTONE_GRACE_S": "inf"})


def test_a_value_that_is_not_a_number_names_the_flag_and_what_it_wants():
    with pytest.raises(ValueError) as e:
        build_config(["--port", "abc"])
    assert str(e.value) == "--port: 'abc' is not an integer"
    with pytest.raises(ValueError) as e:
        build_config(["--request-timeout-s", "soon"])
    assert str(e.value) == "--request-timeout-s: 'soon' is not a number"
