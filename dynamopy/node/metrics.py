"""Prometheus metrics of one node, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dynamopy.node.fast_metrics import FastCounter, FastHistogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# Finer at the low end: the load generator's staleness model (WARS) samples one-way peer
# latencies and replica apply times from these, and loopback calls take well under 2 ms.
FINE_BUCKETS = (0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
                0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self._peer_children: dict = {}
        self.registry = r = CollectorRegistry(auto_describe=True)
        # The request path's metrics (several updates per client request) are the cheap
        # kind (fast_metrics.py): event-loop thread only.
        self.requests = FastCounter("dynamopy_requests_total", "HTTP requests by route and "
                                    "outcome", ["route", "outcome"], registry=r)
        self.request_seconds = FastHistogram("dynamopy_request_seconds", "HTTP request latency",
                                             ["route", "outcome"], buckets=LATENCY_BUCKETS,
                                             registry=r)
        self.quorum_failures = Counter("dynamopy_quorum_failures_total",
                                       "requests that could not reach W or R replicas",
                                       ["kind"], registry=r)
        self.peer_calls = FastCounter("dynamopy_peer_calls_total", "peer RPCs by method and "
                                      "outcome", ["method", "outcome"], registry=r)
        self.peer_errors = FastCounter("dynamopy_peer_errors_total", "failed peer RPCs by method",
                                       ["method"], registry=r)
        self.peer_seconds = FastHistogram("dynamopy_peer_call_seconds", "peer RPC latency",
                                          ["method"], buckets=FINE_BUCKETS, registry=r)
        self.replica_put_seconds = FastHistogram(
            "dynamopy_replica_put_seconds",
            "time a replica takes to make a put durable and readable (local or from a peer)",
            buckets=FINE_BUCKETS, registry=r)
        self.peer_rejected = Counter("dynamopy_peer_rejected_total",
                                     "peer connections closed by the pre-handshake limits",
                                     ["reason"], registry=r)
        self.http_rejected = Counter("dynamopy_http_rejected_total",
                                     "HTTP requests refused or cut off by the request limits",
                                     ["reason"], registry=r)
        self.sync_seconds = Histogram("dynamopy_storage_sync_seconds",
                                      "time of one synced write batch", buckets=LATENCY_BUCKETS,
                                      registry=r)
        self.batch_size = Histogram("dynamopy_storage_batch_size", "operations per synced batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                    registry=r)
        self.read_repairs = Counter("dynamopy_read_repairs_total",
                                    "stale or missing replicas sent the newest version by a read",
                                    registry=r)
        self.restamps = Counter("dynamopy_write_restamps_total",
                                "writes re-stamped above a newer version a replica answered with",
                                registry=r)
        self.clock_offset = Gauge("dynamopy_clock_offset_ms",
                                  "this node's clock minus the median of its peers' (estimated)",
                                  registry=r)
        self.clock_skewed = Gauge("dynamopy_clock_skewed",
                                  "1 while this node's clock is fenced: beyond "
                                  "--max-clock-offset-ms from a majority of its measured peers "
                                  "or stepped since they vouched for it (writes refused)",
                                  registry=r)
        self.peer_clock_offset = Gauge("dynamopy_peer_clock_offset_ms",
                                       "a peer's clock minus this node's (NTP-style estimate)",
                                       ["peer"], registry=r)
        self.grace_rule_broken = Gauge("dynamopy_grace_rule_broken",
                                       "1 while the cluster's tombstone_grace_s and "
                                       "hint_window_s break the grace rule with this node's "
                                       "--max-clock-offset-ms (node/grace_check.py)",
                                       registry=r)
        self.keys = Gauge("dynamopy_keys", "records stored on this node (tombstones included)",
                          registry=r)
        self.epoch = Gauge("dynamopy_epoch", "metadata log epoch applied by this node", registry=r)
        self.peer_alive = Gauge("dynamopy_peer_alive", "1 if the failure detector sees the peer alive",
                                ["peer"], registry=r)
        self.hints_pending = Gauge("dynamopy_hints_pending", "hints held for a target",
                                   ["target"], registry=r)
        self.hints_stored = Counter("dynamopy_hints_stored_total", "hints stored", ["target"],
                                    registry=r)
        self.hints_delivered = Counter("dynamopy_hints_delivered_total", "hints delivered",
                                       ["target"], registry=r)
        self.hints_dropped = Counter("dynamopy_hints_dropped_total", "hints dropped by reason",
                                     ["target", "reason"], registry=r)
        self.gc_pause_seconds = Histogram(
            "dynamopy_gc_pause_seconds", "pauses of the cyclic garbage collector (the whole "
            "process stops meanwhile)", ["generation"], buckets=FINE_BUCKETS, registry=r)
        self.gc_collected = Counter("dynamopy_gc_collected_objects_total",
                                    "objects freed by the cyclic garbage collector",
                                    ["generation"], registry=r)
        self.loop_lag_seconds = Histogram(
            "dynamopy_event_loop_lag_seconds", "how late a periodic timer of the event loop "
            "fired: time the loop spent on other work before it could run a ready callback",
            buckets=FINE_BUCKETS, registry=r)
        self.hint_delivery_lag = Histogram("dynamopy_hint_delivery_lag_seconds",
                                           "time from storing a hint to its delivery",
                                           buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 10800),
                                           registry=r)
        self.ae_exchanges = Counter("dynamopy_anti_entropy_exchanges_total",
                                    "anti-entropy exchanges with a co-replica, by outcome",
                                    ["outcome"], registry=r)
        self.ae_keys_compared = Counter("dynamopy_anti_entropy_keys_compared_total",
                                        "keys listed in differing leaves (both sides)",
                                        registry=r)
        self.ae_keys_repaired = Counter("dynamopy_anti_entropy_keys_repaired_total",
                                        "keys anti-entropy stored newer, pulled here or pushed "
                                        "to a peer", ["direction"], registry=r)
        self.ae_bytes = Counter("dynamopy_anti_entropy_bytes_total",
                                "anti-entropy payload bytes, by direction", ["direction"],
                                registry=r)
        self.tombstones_purged = Counter("dynamopy_tombstones_purged_total",
                                         "tombstones purged (older than the grace, held by "
                                         "every replica)", registry=r)
        self.ae_tree_build_seconds = Gauge("dynamopy_anti_entropy_tree_build_seconds",
                                           "time to build the hash tree from the store at start",
                                           registry=r)

    def on_peer_rejected(self, reason: str) -> None:
        self.peer_rejected.labels(reason).inc()

    def on_http_rejected(self, reason: str) -> None:
        self.http_rejected.labels(reason).inc()

    def on_peer_call(self, method: str, addr: str, seconds: float, outcome: str) -> None:
        children = self._peer_children.get((method, outcome))
        if children is None:  # label lookups cost more than the update: cache them
            children = self._peer_children[(method, outcome)] = (
                self.peer_calls.labels(method, outcome), self.peer_seconds.labels(method),
                self.peer_errors.labels(method) if outcome != "ok" else None)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.sync_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
