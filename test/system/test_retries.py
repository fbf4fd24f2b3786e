"""Issue 2, scenario 4: retries. builtin.flaky(2) ends SUCCESS on its third
attempt; builtin.fail ends FAILURE after max_retries with its message; the
backoff follows PROTOCOL.md §7 (equal jitter on retry_delay x 2^n)."""

import time


def exc_text(meta):
    """Everything a FAILURE/RETRY meta says about its exception, as text."""
    res = meta.get("result")
    parts = []
    if isinstance(res, dict):
        parts.append(str(res.get("exc_type")))
        msg = res.get("exc_message")
        parts.extend(str(m) for m in (msg if isinstance(msg, list) else [msg]))
    else:
        parts.append(str(res))
    parts.append(str(meta.get("traceback")))
    return " ".join(parts)


def _by_type(events, tid):
    return [e["type"] for e in events.snapshot(id_=tid)]


def test_flaky_succeeds_on_third_attempt(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["retry"], concurrency=1)
    tid = client.submit_ok("builtin.flaky", args=[2], queue="retry", max_retries=3,
                           retry_delay=0.05)
    meta = cluster.wait_result(tid, timeout=15)
    assert meta["status"] == "SUCCESS", meta
    assert meta["result"] == 3, "flaky(2) should return its attempt number, 3"
    events.wait_for(lambda e: e["type"] == "task-succeeded" and e.get("id") == tid, timeout=5)
    types = _by_type(events, tid)
    assert types.count("task-retried") == 2, types
    assert types.count("task-started") == 3, types
    retried = events.snapshot("task-retried", tid)
    assert [e["retries"] for e in retried] in ([0, 1], [1, 2]), retried


def test_fail_ends_failure_after_max_retries(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["retry"], concurrency=1)
    tid = client.submit_ok("builtin.fail", args=["disk on fire"], queue="retry",
                           max_retries=2, retry_delay=0.05)
    meta = cluster.wait_result(tid, timeout=15)
    assert meta["status"] == "FAILURE", meta
    assert "disk on fire" in exc_text(meta)
    assert meta["date_done"]
    events.wait_for(lambda e: e["type"] == "task-failed" and e.get("id") == tid, timeout=5)
    types = _by_type(events, tid)
    assert types.count("task-started") == 3, types
    assert types.count("task-retried") == 2, types
    assert types.count("task-failed") == 1, types
    (failed,) = events.snapshot("task-failed", tid)
    assert "disk on fire" in failed["error"]


def test_flaky_past_max_retries_fails(cluster, broker, client):
    cluster.start_worker(queues=["retry"], concurrency=1)
    tid = client.submit_ok("builtin.flaky", args=[5], queue="retry", max_retries=1,
                           retry_delay=0.05)
    meta = cluster.wait_result(tid, timeout=15)
    assert meta["status"] == "FAILURE", meta


def test_max_retries_zero_fails_at_once(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["retry"], concurrency=1)
    tid = client.submit_ok("builtin.fail", args=["once"], queue="retry", max_retries=0)
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "FAILURE" and "once" in exc_text(meta)
    assert not events.snapshot("task-retried", tid)


def test_backoff_is_equal_jitter(cluster, broker, client):
    """countdown(n) lies in [d/2, d] with d = retry_delay * 2^n, and the retry
    really waits that long."""
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["retry"], concurrency=1)
    delay = 0.2
    tid = client.submit_ok("builtin.flaky", args=[2], queue="retry", max_retries=3,
                           retry_delay=delay)
    assert cluster.wait_result(tid, timeout=15)["status"] == "SUCCESS"
    events.wait_count("task-started", 3, ids=[tid], timeout=5)
    retried = events.snapshot("task-retried", tid)
    started = events.snapshot("task-started", tid)
    assert len(retried) == 2
    for n, ev in enumerate(retried):
        d = delay * 2 ** n
        assert d / 2 - 0.001 <= ev["countdown"] <= d + 0.001, (n, ev)
        # the next attempt starts no earlier than the countdown after the retry
        assert started[n + 1]["timestamp"] >= ev["timestamp"] + ev["countdown"] - 0.01


def test_retry_delay_default_comes_from_worker_config(cluster, broker, client, tmp_path):
    """Without max_retries/retry_delay in the message, the worker's config
    file (Celery names) decides."""
    conf = tmp_path / "worker.ini"
    conf.write_text("# worker settings, Celery names\n"
                    "task_max_retries = 1\n"
                    "task_default_retry_delay = 0.05\n")
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["retry"], concurrency=1, config=conf)
    t0 = time.monotonic()
    tid = client.submit_ok("builtin.fail", args=["from config"], queue="retry")
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "FAILURE" and "from config" in exc_text(meta)
    assert time.monotonic() - t0 < 5, "the default 60 s retry delay was used"
    events.wait_for(lambda e: e["type"] == "task-failed" and e.get("id") == tid, timeout=5)
    assert len(events.snapshot("task-retried", tid)) == 1
