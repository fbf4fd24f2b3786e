"""Issue 2, scenario 3: countdown and ETA tasks never run early (and run
promptly when due); expired tasks never run and end REVOKED (reason
expired). Start times come from the broker's task-started events, which it
stamps when the worker reports the start, so an early start cannot hide."""

import time
from datetime import datetime

from ztp import task_message

# The broker and this test read the same system clock; allow for float
# rounding only.
EPS = 0.002


def _iso_to_unix(s):
    s = s.replace("Z", "+00:00")
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:  # Celery writes naive UTC
        from datetime import timezone
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _started(events, tid, timeout=10):
    return events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == tid,
                           timeout=timeout, what=f"task-started of {tid}")


def test_countdown_never_early(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["sched"], concurrency=2)
    t0 = time.time()
    tid = client.submit_ok("builtin.noop", queue="sched", countdown=1.0)
    sched = client.control("scheduled")
    assert tid in [s["id"] for s in sched], sched
    (entry,) = [s for s in sched if s["id"] == tid]
    assert entry["eta"] >= t0 + 1.0 - EPS

    # Nothing while it is not due.
    while time.time() < t0 + 0.8:
        assert cluster.meta(tid) is None, "countdown task ran early"
        time.sleep(0.02)
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "SUCCESS"
    started = _started(events, tid)
    assert started["timestamp"] >= t0 + 1.0 - EPS, started["timestamp"] - t0
    assert started["timestamp"] <= t0 + 1.0 + 2.0, "countdown task released far too late"
    assert _iso_to_unix(meta["date_done"]) >= t0 + 1.0 - EPS
    assert tid not in [s["id"] for s in client.control("scheduled")]


def test_eta_never_early(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["sched"], concurrency=2)
    eta = time.time() + 1.2
    tid = client.submit_ok("builtin.add", args=[2, 2], queue="sched", eta=eta)
    # An ETA in the past runs at once.
    past = client.submit_ok("builtin.add", args=[3, 3], queue="sched", eta=time.time() - 30)
    assert cluster.wait_result(past, timeout=5)["result"] == 6
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["result"] == 4
    started = _started(events, tid)
    assert started["timestamp"] >= eta - EPS
    assert started["timestamp"] <= eta + 2.0


def test_many_countdowns_release_in_due_order(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["sched"], concurrency=1, prefetch=1)
    t0 = time.time()
    # Sent in reverse due order: the timer heap must sort them.
    msgs = [task_message("builtin.noop", queue="sched", countdown=0.3 + 0.1 * k)
            for k in range(8, -1, -1)]
    assert all(r.accepted for r in client.submit_many(msgs))
    started = events.wait_count("task-started", len(msgs), ids={m["id"] for m in msgs},
                                timeout=15)
    due = {m["id"]: t0 + m["countdown"] for m in msgs}
    for e in started:
        assert e["timestamp"] >= due[e["id"]] - EPS, "task started before its countdown"
    assert [e["id"] for e in started] == [m["id"] for m in reversed(msgs)]


def test_expired_in_queue_never_runs(cluster, broker, client):
    """Expires while waiting in a queue nobody serves; the worker that joins
    later must not run it, and it ends REVOKED."""
    events = cluster.events()
    events.sync(client)
    expires = time.time() + 0.4
    tid = client.submit_ok("builtin.add", args=[1, 1], queue="exp", expires=expires)
    fresh = client.submit_ok("builtin.add", args=[5, 5], queue="exp", expires=time.time() + 60)
    while time.time() < expires + 0.1:  # let the expiry pass: a wall-clock instant
        time.sleep(0.02)
    cluster.start_worker(queues=["exp"], concurrency=1)
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "REVOKED", meta
    assert cluster.wait_result(fresh)["result"] == 10
    revoked = events.wait_for(lambda e: e["type"] == "task-revoked" and e.get("id") == tid,
                              timeout=5, what="task-revoked")
    assert revoked["reason"] == "expired"
    assert not events.snapshot("task-started", tid), "expired task was started"
    assert not events.snapshot("task-succeeded", tid)


def test_expires_before_countdown_due(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["exp"], concurrency=1)
    tid = client.submit_ok("builtin.noop", queue="exp", countdown=0.6, expires=time.time() + 0.2)
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "REVOKED", meta
    assert not events.snapshot("task-started", tid), "expired task was started"
    revoked = events.snapshot("task-revoked", tid)
    assert revoked and revoked[0]["reason"] == "expired"
    assert client.control("stats")["expired"] >= 1
