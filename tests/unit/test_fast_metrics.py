"""The request path's cheap counters and histograms (dynamopy/node/fast_metrics.py) expose
exactly what prometheus_client's Counter and Histogram do for the same updates (scrapers and
the load generator's /metrics parser read these series)."""

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dynamopy.node.fast_metrics import FastCounter, FastHistogram
from dynamopy.node.metrics import FINE_BUCKETS, Metrics


def _lines(registry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if "_created" not in line)


def test_same_exposition_as_prometheus_client_for_the_same_updates():
    rng = random.Random(7)
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    tc = Counter("x_requests_total", "reqs", ["route", "outcome"], registry=theirs)
    th = Histogram("x_seconds", "lat", ["route"], buckets=FINE_BUCKETS, registry=theirs)
    tu = Histogram("x_put_seconds", "put", buckets=(0.001, 0.01, 1.0), registry=theirs)
    oc = FastCounter("x_requests_total", "reqs", ["route", "outcome"], registry=ours)
    oh = FastHistogram("x_seconds", "lat", ["route"], buckets=FINE_BUCKETS, registry=ours)
    ou = FastHistogram("x_put_seconds", "put", buckets=(0.001, 0.01, 1.0), registry=ours)
    # values on bucket bounds too: a bound is "less or equal"
    values = [rng.choice(FINE_BUCKETS) for _ in range(50)] + [rng.uniform(0, 6) for _ in range(200)]
    for i, v in enumerate(values):
        route, outcome = ("get", "put")[i % 2], ("ok", "not_found", "timeout")[i % 3]
        tc.labels(route, outcome).inc()
        oc.labels(route, outcome).inc()
        th.labels(route).observe(v)
        oh.labels(route).observe(v)
        tu.observe(v / 100)
        ou.observe(v / 100)
    assert _lines(ours) == _lines(theirs)


def test_the_node_metrics_keep_their_names_and_labels():
    m = Metrics()
    m.requests.labels("put", "ok").inc()
    m.request_seconds.labels("put", "ok").observe(0.003)
    m.on_peer_call("put", "127.0.0.1:1", 0.0004, "timeout")
    m.replica_put_seconds.observe(0.002)
    text = m.render().decode()
    for line in ('dynamopy_requests_total{outcome="ok",route="put"} 1.0',
                 'dynamopy_request_seconds_bucket{le="0.005",outcome="ok",route="put"} 1.0',
                 'dynamopy_peer_calls_total{method="put",outcome="timeout"} 1.0',
                 'dynamopy_peer_errors_total{method="put"} 1.0',
                 'dynamopy_peer_call_seconds_count{method="put"} 1.0',
                 'dynamopy_replica_put_seconds_bucket{le="0.002"} 1.0'):
        assert line in text.splitlines(), line
    with pytest.raises(ValueError):
        m.requests.labels("put")
