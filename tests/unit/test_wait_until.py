"""The integration harness's wait: only "not yet" answers are retried, a broken predicate
surfaces at once (it used to swallow KeyError/TypeError and look like a timeout)."""

import httpx
import pytest

from dynamopy.client import DynamoError
from tests.integration.cluster import wait_until


def test_a_broken_predicate_raises_its_own_error_not_a_timeout():
    with pytest.raises(KeyError):
        wait_until(lambda: {}["missing"], timeout_s=0.3)
    with pytest.raises(TypeError):
        missing = None   # a record that is absent, read as if present
        wait_until(lambda: missing["version"], timeout_s=0.3)


def test_an_error_answer_other_than_503_is_not_retried():
    def answer_404():
        raise DynamoError(404, "not_found", "no such key")
    with pytest.raises(DynamoError, match="404"):
        wait_until(answer_404, timeout_s=0.3)


@pytest.mark.parametrize("not_yet", [
    DynamoError(503, "not_ready", "catching up"),
    DynamoError(0, "unreachable", "connection refused"),
    httpx.ConnectError("connection refused"),
])
def test_unreachable_or_503_is_retried_until_the_predicate_holds(not_yet):
    calls = []

    def predicate():
        calls.append(1)
        if len(calls) < 3:
            raise not_yet
        return True
    wait_until(predicate, timeout_s=30)
    assert len(calls) == 3


def test_a_predicate_never_true_times_out_naming_the_last_error():
    def refused():
        raise httpx.ConnectError("connection refused")
    with pytest.raises(TimeoutError, match="n4 ready not reached.*ConnectError"):
        wait_until(refused, timeout_s=0.3, what="n4 ready")
