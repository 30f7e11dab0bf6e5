"""Node settings: every setting is a flag and an environment variable ``DYNAMOPY_<NAME>``.

The flag wins over the environment, the environment over the default. ``SETTINGS`` is the
single table the CLI parser, the README and ``NodeConfig`` are built from.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from dynamopy.peer.framing import MAX_FRAME_BYTES

# Every copy of a record travels in one peer frame (a put, a read reply, a read repair, a
# hint or transfer batch of one large record). Beside the value, a frame holds the key
# (<= 1 KiB), the Content-Type (<= 1 KiB) and the message envelope; 64 KiB covers them.
FRAME_RESERVE_BYTES = 64 * 1024
MAX_VALUE_BYTES_LIMIT = MAX_FRAME_BYTES - FRAME_RESERVE_BYTES


DEFAULT_CLUSTER_SECRET = "dynamopy-dev-secret"


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"  # member ids and zones (the join route's)


@dataclass(frozen=True)
class Setting:
    name: str          # flag name without dashes, underscores -> dashes on the CLI
    type: type
    default: object
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("node_id", str, None, "this node's member id (default: n<port>)"),
    Setting("host", str, "127.0.0.1", "address to listen on (HTTP and peer)"),
    Setting("port", int, 8001, "HTTP port (public REST, admin, health, metrics)"),
    Setting("peer_port", int, None, "peer RPC port (default: HTTP port + 1000)"),
    Setting("data_dir", str, None, "where LevelDB files live (default: ./.dynamopy/<node id>)"),
    Setting("seeds", str, "", "comma-separated URLs of the seed members (the metadata group); "
            "a new cluster needs at least n of them (its replicas per key): with fewer, a seed "
            "that finds no cluster running says so on /ready and waits for one to reach it"),
    Setting("join", str, "", "URL of any member of a running cluster to join; a join refused "
            "for good (wrong --cluster-secret or --api-token, this id a live member at another "
            "address) exits 1 with the reason, one refused for now (503, nothing answering, "
            "another change in progress) is retried"),
    Setting("n", int, 3, "replicas per key (fixed at cluster creation)"),
    Setting("r", int, 2, "default read quorum"),
    Setting("w", int, 2, "default write quorum"),
    Setting("cluster_secret", str, DEFAULT_CLUSTER_SECRET,
            "shared secret that authenticates peers (required off loopback)"),
    Setting("insecure", bool, False,
            "allow a non-loopback --host with the built-in cluster secret (warns)"),
    Setting("api_token", str, "", "if set, data and cluster routes need 'Authorization: Bearer <token>'"),
    Setting("advertise_url", str, None, "HTTP URL other members use to reach this node "
            "(default: http://<host>:<port>, 127.0.0.1 for a --host of 0.0.0.0)"),
    Setting("advertise_peer", str, None, "host:port other members use for peer RPC "
            "(default: <host>:<peer port>)"),
    Setting("request_timeout_s", float, 2.0, "how long a coordinator waits for W/R replicas"),
    Setting("max_value_bytes", int, 1024 * 1024,
            f"largest value accepted (at most {MAX_VALUE_BYTES_LIMIT}: a value must fit in one "
            "peer frame)"),
    Setting("hint_window_s", float, 3 * 3600.0, "no new hints for a member down longer than this"),
    Setting("hint_max_bytes", int, 256 * 1024 * 1024, "cap on hint bytes held for one target"),
    Setting("transfer_max_bytes_s", int, 64 * 1024 * 1024,
            "throttle of data streamed to this node during joins, leaves and removals"),
    Setting("anti_entropy_interval_s", float, 180.0,
            "cluster setting (the seeds' flag at bootstrap, then POST /cluster/config): how "
            "often each node compares hash trees with each co-replica and repairs the keys "
            "that differ; 0 turns anti-entropy off"),
    Setting("anti_entropy_rate", int, 1000,
            "cluster setting (bootstrap default): keys per second anti-entropy may list or "
            "repair (its budget beside client traffic)"),
    Setting("tombstone_grace_s", float, 10 * 86400.0,
            "cluster setting (bootstrap default): a tombstone is purged once older than this "
            "and held by every current replica of its key, with no older copy on any other "
            "member of the ring (needs anti-entropy on), and older "
            "hints are dropped; bring a down node back within it, or remove it and add it "
            "fresh; nine tenths of it less --max-clock-offset-ms must be at least "
            "--hint-window-s"),
    Setting("peer_max_unauthenticated", int, 64,
            "peer connections allowed to wait for their handshake; the oldest is dropped beyond"),
    Setting("peer_buffer_bytes", int, 64 * 1024 * 1024,
            "bytes this node buffers for large incoming peer frames; senders wait beyond"),
    Setting("max_concurrent_requests", int, 1024,
            "HTTP requests served at once; more get 503 with Retry-After"),
    Setting("http_body_buffer_bytes", int, 64 * 1024 * 1024,
            "request-body bytes held at once across HTTP requests; more get 503 with Retry-After"),
    Setting("http_read_timeout_s", float, 15.0,
            "time a request's headers and body have to arrive (slow clients are cut off)"),
    Setting("http_server", str, "fast",
            "HTTP request path: 'fast' answers GET/HEAD/PUT/DELETE /kv/<key> without ASGI "
            "(same handlers, limits and contract), 'uvicorn' sends every request through "
            "uvicorn's ASGI cycle"),
    Setting("rejoin_after_leave", bool, False,
            "join again although this data directory's node left the cluster by a graceful "
            "leave (members leave); without it such a node stays out and says why"),
    Setting("join_timeout_s", float, 60.0,
            "a join whose joiner does not answer for this long is abandoned"),
    Setting("metadata_group_size", int, 3,
            "target size of the metadata group (the Paxos acceptors): 1, 3 or 5; set at "
            "bootstrap, later through POST /cluster/config"),
    Setting("metadata_group_replace_after_s", float, 300.0,
            "a metadata-group member down this long is replaced by a live member"),
    Setting("zone", str, "", "failure-domain label of this node (rack, zone); the metadata "
            "group spreads over zones"),
    Setting("max_clock_offset_ms", int, 500,
            "a node whose clock is further than this from a majority of its measured peers, "
            "or stepped by more than this since they last vouched for it, stops stamping "
            "writes (503 clock_skew) and is not ready; 0 turns the check off"),
    Setting("peer_delay_ms", str, "", "experiment knob: delay outgoing peer messages, 'X' or 'LO-HI' ms"),
    Setting("log_level", str, "info", "log level"),
    Setting("tls_cert", str, "", "PEM certificate of this node: turns on HTTPS and mutual TLS "
            "between peers (needs --tls-key and --tls-ca)"),
    Setting("tls_key", str, "", "PEM private key of --tls-cert"),
    Setting("tls_ca", str, "", "PEM CA bundle: peers must present a certificate it issued"),
)


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    host: str
    port: int
    peer_port: int
    data_dir: str
    seeds: tuple[str, ...]
    join: str
    n: int
    r: int
    w: int
    cluster_secret: str
    api_token: str
    insecure: bool
    advertise_url: str
    advertise_peer: str
    request_timeout_s: float
    max_value_bytes: int
    hint_window_s: float
    hint_max_bytes: int
    transfer_max_bytes_s: int
    peer_delay_ms: Optional[tuple[float, float]]
    log_level: str = "info"
    peer_max_unauthenticated: int = 64
    peer_buffer_bytes: int = 64 * 1024 * 1024
    max_concurrent_requests: int = 1024
    http_body_buffer_bytes: int = 64 * 1024 * 1024
    http_read_timeout_s: float = 15.0
    http_server: str = "fast"
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""

    @property
    def tls(self):
        """``dynamopy.tls.TLSFiles`` when TLS is on, else ``None``."""
        from dynamopy.tls import files
        return files(self.tls_cert, self.tls_key, self.tls_ca)
    join_timeout_s: float = 60.0
    rejoin_after_leave: bool = False
    max_clock_offset_ms: int = 500
    anti_entropy_interval_s: float = 180.0
    anti_entropy_rate: int = 1000
    tombstone_grace_s: float = 10 * 86400.0
    metadata_group_size: int = 3
    metadata_group_replace_after_s: float = 300.0
    zone: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for s in SETTINGS:
        env = "DYNAMOPY_" + s.name.upper()
        default = "" if s.default is None else s.default
        if s.type is bool:
            parser.add_argument("--" + s.name.replace("_", "-"), dest=s.name, default=None,
                                action="store_const", const="true",
                                help=f"{s.help} [env {env}=1; default off]")
            continue
        if s.default in (None, ""):   # derived from other settings (said in the help), or none
            shown = "" if "default" in s.help else "; default: none"
        else:
            shown = "; default: " + (repr(default) if isinstance(default, str) else str(default))
        parser.add_argument("--" + s.name.replace("_", "-"), dest=s.name, default=None,
                            help=f"{s.help} [env {env}{shown}]")


def _parse_delay(text: str) -> Optional[tuple[float, float]]:
    text = text.strip()
    if not text:
        return None
    lo, _, hi = text.partition("-")
    lo_f = float(lo)
    hi_f = float(hi) if hi else lo_f
    if lo_f < 0 or hi_f < lo_f:
        raise ValueError(f"peer delay {text!r}: want 'X' or 'LO-HI' with 0 <= LO <= HI")
    return (lo_f, hi_f)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _parse_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"--{name.replace('_', '-')}: {value!r} is not one of 1/true/yes/on or 0/false/no/off")


def resolve(args: argparse.Namespace, environ: Optional[dict] = None) -> NodeConfig:
    """Merge flags, environment and defaults; raise ValueError with a clear message."""
    env = os.environ if environ is None else environ
    raw: dict = {}
    for s in SETTINGS:
        value = getattr(args, s.name, None)
        if value is None:
            value = env.get("DYNAMOPY_" + s.name.upper())
        if value is None or value == "" and s.default is not None and s.type is not str:
            value = s.default
        if s.type is bool:
            value = _parse_bool(s.name, value)
        elif value is not None and s.type in (int, float):
            flag = "--" + s.name.replace("_", "-")
            try:
                value = s.type(value)
            except ValueError:
                what = "an integer" if s.type is int else "a number"
                raise ValueError(f"{flag}: {value!r} is not {what}") from None
            if s.type is float and not math.isfinite(value):
                # nan and inf parse as floats; no setting can run with one (a NaN cluster
                # setting is not even JSON: the node's own /node answered 500 at bootstrap)
                raise ValueError(f"{flag}: {value!r} is not a finite number")
        raw[s.name] = value
    port = raw["port"]
    node_id = raw["node_id"] or f"n{port}"
    # The join route takes only these (api/members.py): a node started with another id or
    # zone would have its join refused and wait, unready, for ever.
    for flag, value in (("node-id", node_id), ("zone", raw["zone"] or "")):
        if value and not re.search(ID_PATTERN, value):
            raise ValueError(f"--{flag} {value!r}: want 1-63 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
    peer_port = raw["peer_port"] if raw["peer_port"] is not None else port + 1000
    for flag, value in (("port", port), ("peer-port", peer_port)):
        if not 1 <= value <= 65535:
            default = " (the HTTP port + 1000: set --peer-port)" \
                if flag == "peer-port" and raw["peer_port"] is None else ""
            raise ValueError(f"--{flag} {value}{default} is outside 1..65535")
    host = raw["host"]
    adv_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    seeds = tuple(u.strip().rstrip("/") for u in (raw["seeds"] or "").split(",") if u.strip())
    join = (raw["join"] or "").strip().rstrip("/")
    for flag, urls in (("seeds", seeds), ("join", (join,) if join else ())):
        for url in urls:
            try:
                parts = urlsplit(url)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            except ValueError:   # e.g. "http://[::1"
                ok = False
            if not ok:
                # (it would be retried for ever, never ready)
                raise ValueError(f"--{flag}: {url!r} is not a member's URL: want "
                                 "http://HOST:PORT (https:// with TLS)")
    n, r, w = raw["n"], raw["r"], raw["w"]
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    for name, v in (("r", r), ("w", w)):
        if not 1 <= v <= n:
            raise ValueError(f"--{name}={v} outside 1..n={n}")
    for name in ("peer_max_unauthenticated", "peer_buffer_bytes", "max_concurrent_requests",
                 "http_body_buffer_bytes"):
        if raw[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {raw[name]}")
    if raw["http_server"] not in ("fast", "uvicorn"):
        raise ValueError(f"--http-server must be 'fast' or 'uvicorn', got {raw['http_server']!r}")
    if raw["http_read_timeout_s"] <= 0:
        raise ValueError(f"--http-read-timeout-s must be positive, got {raw['http_read_timeout_s']}")
    from dynamopy.tls import files as tls_files
    tls = tls_files(raw["tls_cert"] or "", raw["tls_key"] or "", raw["tls_ca"] or "")
    for path in (tls.cert, tls.key, tls.ca) if tls else ():
        if not os.path.isfile(path):
            raise ValueError(f"TLS file {path!r} not found")
    scheme = "https" if tls else "http"
    if not raw["request_timeout_s"] > 0:
        raise ValueError(f"--request-timeout-s must be positive, got {raw['request_timeout_s']}")
    if not raw["join_timeout_s"] > 0:
        raise ValueError(f"--join-timeout-s must be positive, got {raw['join_timeout_s']}")
    if raw["anti_entropy_interval_s"] < 0:
        raise ValueError(f"--anti-entropy-interval-s must be >= 0 (0 turns it off), got "
                         f"{raw['anti_entropy_interval_s']}")
    if raw["anti_entropy_rate"] < 1:
        raise ValueError(f"--anti-entropy-rate must be at least 1 key/s, got "
                         f"{raw['anti_entropy_rate']}")
    if not raw["tombstone_grace_s"] > 0:
        raise ValueError(f"--tombstone-grace-s must be positive, got {raw['tombstone_grace_s']}")
    from dynamopy.core.tombstones import grace_covers_window, min_grace_s, seconds_text as sec
    grace, window = raw["tombstone_grace_s"], raw["hint_window_s"]
    bound_ms = max(0, raw["max_clock_offset_ms"])
    if not grace_covers_window(grace, window, bound_ms):
        raise ValueError(
            f"--tombstone-grace-s={sec(grace)} is too short for --hint-window-s={sec(window)}: a "
            f"hint lives 90% of the grace less --max-clock-offset-ms ({bound_ms}), so hints "
            f"kept for a member back within the window would expire undelivered; want "
            f"--tombstone-grace-s >= {sec(min_grace_s(window, bound_ms))} or a shorter "
            f"--hint-window-s")
    if raw["metadata_group_size"] not in (1, 3, 5):
        raise ValueError(f"--metadata-group-size must be 1, 3 or 5, got "
                         f"{raw['metadata_group_size']}")
    if not raw["metadata_group_replace_after_s"] > 0:
        raise ValueError(f"--metadata-group-replace-after-s must be positive, got "
                         f"{raw['metadata_group_replace_after_s']}")
    if not 0 <= raw["max_value_bytes"] <= MAX_VALUE_BYTES_LIMIT:
        raise ValueError(f"--max-value-bytes={raw['max_value_bytes']} outside 0.."
                         f"{MAX_VALUE_BYTES_LIMIT} (a value must fit in one "
                         f"{MAX_FRAME_BYTES}-byte peer frame with its key and metadata)")
    advertise_url = (raw["advertise_url"] or f"{scheme}://{adv_host}:{port}").rstrip("/")
    if join:
        target = urlsplit(join)
        own = {"127.0.0.1", "localhost", "::1", host, adv_host,
               urlsplit(advertise_url).hostname}
        if join == advertise_url or target.hostname in own and (
                target.port or (443 if target.scheme == "https" else 80)) == port:
            # (it would ask itself for the cluster for ever, never ready)
            raise ValueError(f"--join {join} is this node itself: give the URL of a member "
                             "of the running cluster")
    return NodeConfig(
        node_id=node_id,
        host=host,
        port=port,
        peer_port=peer_port,
        data_dir=raw["data_dir"] or os.path.join(".dynamopy", node_id),
        seeds=seeds,
        join=join,
        n=n, r=r, w=w,
        cluster_secret=raw["cluster_secret"],
        api_token=raw["api_token"] or "",
        insecure=raw["insecure"],
        advertise_url=advertise_url,
        advertise_peer=raw["advertise_peer"] or f"{adv_host}:{peer_port}",
        request_timeout_s=raw["request_timeout_s"],
        max_value_bytes=raw["max_value_bytes"],
        hint_window_s=raw["hint_window_s"],
        hint_max_bytes=raw["hint_max_bytes"],
        transfer_max_bytes_s=max(1, raw["transfer_max_bytes_s"]),
        peer_delay_ms=_parse_delay(raw["peer_delay_ms"] or ""),
        log_level=raw["log_level"],
        peer_max_unauthenticated=raw["peer_max_unauthenticated"],
        peer_buffer_bytes=raw["peer_buffer_bytes"],
        max_concurrent_requests=raw["max_concurrent_requests"],
        http_body_buffer_bytes=raw["http_body_buffer_bytes"],
        http_read_timeout_s=raw["http_read_timeout_s"],
        http_server=raw["http_server"],
        tls_cert=raw["tls_cert"] or "", tls_key=raw["tls_key"] or "", tls_ca=raw["tls_ca"] or "",
        join_timeout_s=raw["join_timeout_s"],
        rejoin_after_leave=raw["rejoin_after_leave"],
        max_clock_offset_ms=_non_negative("max-clock-offset-ms", raw["max_clock_offset_ms"]),
        anti_entropy_interval_s=raw["anti_entropy_interval_s"],
        anti_entropy_rate=raw["anti_entropy_rate"],
        tombstone_grace_s=raw["tombstone_grace_s"],
        metadata_group_size=raw["metadata_group_size"],
        metadata_group_replace_after_s=raw["metadata_group_replace_after_s"],
        zone=raw["zone"] or "",
    )


def _non_negative(flag: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"--{flag} must be >= 0, got {value}")
    return value

