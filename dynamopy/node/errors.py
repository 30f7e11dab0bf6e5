"""Errors the runtime raises toward the API; each maps to a status and a JSON error code."""

from __future__ import annotations

from typing import Optional

from dynamopy.peer import RemoteError

# Codes of refusals between peers (RemoteError.code), shared by replica, hints and transfer.
STALE_EPOCH = "stale_epoch"          # the coordinator's ring is older: catch up and retry
NOT_CAUGHT_UP = "not_caught_up"      # this replica is behind what its peers report


class StaleEpochError(RemoteError):
    """A ``stale_epoch`` refusal (``core.placement.StaleEpoch`` between peers): ``epoch`` is
    the refusing node's epoch, an int. On the wire it is the code ``stale_epoch`` with the
    epoch in decimal as the detail; :func:`stale_epoch_of` reads it back."""

    def __init__(self, epoch: int):
        super().__init__(STALE_EPOCH, str(epoch))
        self.epoch = epoch


def stale_epoch_of(exc: BaseException) -> Optional[int]:
    """The epoch a ``stale_epoch`` refusal names, raised here or answered by a peer; None
    for any other error, or a detail that is not a non-negative integer. The one place the
    epoch is read back from a peer's answer."""
    if isinstance(exc, StaleEpochError):
        return exc.epoch
    if not isinstance(exc, RemoteError) or exc.code != STALE_EPOCH:
        return None
    detail = exc.detail.strip()
    return int(detail) if detail.isdecimal() and detail.isascii() else None


class NodeError(Exception):
    status = 500
    code = "internal"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(NodeError):
    status, code = 400, "bad_request"


class NotFound(NodeError):
    status, code = 404, "not_found"


class TooLarge(NodeError):
    status, code = 413, "too_large"


class QuorumUnavailable(NodeError):
    status, code = 503, "quorum_unavailable"


class NotReady(NodeError):
    status, code = 503, "not_ready"


class MembershipError(NodeError):
    """A refused membership change; status/code come from core.membership.InvalidEntry."""

    def __init__(self, status: int, code: str, detail: str, **extra):
        super().__init__(detail, **extra)
        self.status, self.code = status, code


class StaleSession(NodeError):
    """A read could not find a version as new as the client's session token."""
    status, code = 503, "stale_session"


class ClockSkew(NodeError):
    """This node's clock is too far from its peers' to stamp versions."""
    status, code = 503, "clock_skew"
