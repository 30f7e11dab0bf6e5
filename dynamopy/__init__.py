"""dynamopy: a Dynamo-style leaderless quorum key-value store."""

__version__ = "0.1.0"
