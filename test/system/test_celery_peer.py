"""Issue 2, scenario 8: a Python peer submits tasks by the documented
protocol (ztp.py: pyzmq + msgpack, written from PROTOCOL.md) and reads the
results with Celery's own AsyncResult against the same Redis: our workers
write Celery's result layout faithfully."""

import time

import pytest


def test_success_read_by_celery(cluster, broker, client, celery_app):
    cluster.start_worker(queues=["py"], concurrency=1)
    tid = client.submit_ok("builtin.add", args=[19, 23], queue="py")
    res = celery_app.AsyncResult(tid)
    assert res.get(timeout=15) == 42
    assert res.state == "SUCCESS"
    assert res.successful() and res.ready()
    assert res.result == 42
    assert res.date_done is not None


def test_structured_result_read_by_celery(cluster, broker, client, celery_app):
    cluster.start_worker(queues=["py"], concurrency=1)
    tid = client.submit_ok("builtin.echo", args=[1, "two", [3.5, None], {"k": True}],
                           kwargs={"name": "drive2", "n": 7}, queue="py")
    res = celery_app.AsyncResult(tid)
    assert res.get(timeout=15) == {"args": [1, "two", [3.5, None], {"k": True}],
                                   "kwargs": {"name": "drive2", "n": 7}}


def test_failure_read_by_celery(cluster, broker, client, celery_app):
    cluster.start_worker(queues=["py"], concurrency=1)
    tid = client.submit_ok("builtin.fail", args=["quota exceeded for user 7"], queue="py",
                           max_retries=0)
    res = celery_app.AsyncResult(tid)
    with pytest.raises(Exception) as info:
        res.get(timeout=15)
    assert "quota exceeded for user 7" in str(info.value)
    assert res.state == "FAILURE"
    assert res.failed()
    assert isinstance(res.result, Exception)
    assert "quota exceeded for user 7" in str(res.result)
    # propagate=False hands back the exception instead of raising it
    assert isinstance(res.get(timeout=1, propagate=False), Exception)
    assert isinstance(res.traceback, (str, type(None)))


def test_pending_then_progress_then_success_seen_by_celery(cluster, broker, client,
                                                           celery_app):
    cluster.start_worker(queues=["py"], concurrency=1)
    tid = client.submit_ok("builtin.progress", args=[8, 0.1], queue="py")
    res = celery_app.AsyncResult(tid)
    seen = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not res.ready():
        seen.add(res.state)
        if res.state == "PROGRESS":
            info = res.info
            assert set(info) >= {"current", "total"} and info["total"] == 8, info
        time.sleep(0.02)
    assert res.get(timeout=5) == 8
    assert "PROGRESS" in seen, f"never saw PROGRESS, states seen: {seen}"


def test_revoked_read_by_celery(cluster, broker, client, celery_app):
    tid = client.submit_ok("builtin.add", args=[1, 1], queue="py-later")
    assert client.control("revoke", id=tid, terminate=False, signal="SIGTERM")["state"] == "queued"
    cluster.start_worker(queues=["py-later"], concurrency=1)
    res = celery_app.AsyncResult(tid)
    from celery.exceptions import TaskRevokedError
    with pytest.raises(TaskRevokedError):
        res.get(timeout=15)
    assert res.state == "REVOKED"


def test_result_has_celery_fields_and_ttl(cluster, broker, client):
    cluster.start_worker(queues=["py"], concurrency=1)
    tid = client.submit_ok("builtin.add", args=[1, 2], queue="py")
    meta = cluster.wait_result(tid)
    assert set(meta) >= {"status", "result", "traceback", "children", "date_done", "task_id"}
    assert meta["task_id"] == tid and meta["children"] == []
    ttl = cluster.redis.ttl(f"celery-task-meta-{tid}")
    assert 0 < ttl <= 86400, ttl


def test_result_expires_from_config(cluster, broker, client, tmp_path):
    conf = tmp_path / "w.ini"
    conf.write_text("[worker]\nresult_expires = 120\n")
    cluster.start_worker(queues=["py"], concurrency=1, config=conf)
    tid = client.submit_ok("builtin.noop", queue="py")
    cluster.wait_result(tid)
    assert 0 < cluster.redis.ttl(f"celery-task-meta-{tid}") <= 120


def test_result_published_for_waiters(cluster, broker, client):
    """Each state change is PUBLISHed on the key's channel (waiters do not poll)."""
    cluster.start_worker(queues=["py"], concurrency=1)
    import redis as redis_py
    sub = redis_py.Redis(host="127.0.0.1", port=cluster.redis_server.port, db=1,
                         decode_responses=True).pubsub()
    tid = "pub-" + str(time.time_ns())
    sub.subscribe(f"celery-task-meta-{tid}")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    client.submit_ok("builtin.add", args=[2, 2], queue="py", id=tid)
    import json
    deadline = time.monotonic() + 10
    final = None
    while time.monotonic() < deadline and final is None:
        m = sub.get_message(timeout=0.5)
        if m and m["type"] == "message":
            body = json.loads(m["data"])
            if body["status"] == "SUCCESS":
                final = body
    sub.close()
    assert final and final["result"] == 4
