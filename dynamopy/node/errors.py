"""Errors the runtime raises toward the API; each maps to a status and a JSON error code."""

from __future__ import annotations

# Codes of refusals between peers (RemoteError.code), shared by replica, hints and transfer.
STALE_EPOCH = "stale_epoch"          # the coordinator's ring is older: catch up and retry
NOT_CAUGHT_UP = "not_caught_up"      # this replica is behind what its peers report


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

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code = status, code


class StaleSession(NodeError):
    """A read could not find a version as new as the client's session token."""
    status, code = 503, "stale_session"


class ClockSkew(NodeError):
    """This node's clock is too far from its peers' to stamp versions."""
    status, code = 503, "clock_skew"
