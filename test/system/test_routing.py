"""Issue 2, scenario 2: routing by queue. A `-Q ai_processing` worker never
receives a `thumbnails` task; a task for a queue nobody serves waits, and
runs once a worker for that queue joins; no queue means `default`."""

import time

from conftest import wait_until
from ztp import task_message


def test_workers_only_get_their_queues(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    ai = cluster.start_worker(queues=["ai_processing"], concurrency=2)
    thumbs = cluster.start_worker(queues=["thumbnails"], concurrency=2)
    msgs = []
    for i in range(30):
        msgs.append(task_message("builtin.echo", args=[i], queue="thumbnails"))
        msgs.append(task_message("builtin.echo", args=[i], queue="ai_processing"))
    assert all(r.accepted for r in client.submit_many(msgs))
    metas = cluster.wait_results([m["id"] for m in msgs], timeout=30)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}

    queue_of = {m["id"]: m["queue"] for m in msgs}
    started = events.wait_count("task-started", len(msgs), ids=queue_of.keys(), timeout=10)
    for e in started:
        expected = thumbs.name if queue_of[e["id"]] == "thumbnails" else ai.name
        assert e["worker"] == expected, (
            f"{queue_of[e['id']]} task {e['id']} ran on {e['worker']}")
    # Both actually worked.
    assert {e["worker"] for e in started} == {ai.name, thumbs.name}


def test_queue_nobody_serves_waits_then_runs(cluster, broker, client):
    cluster.start_worker(queues=["ai_processing"], concurrency=1)
    tid = client.submit_ok("builtin.add", args=[20, 22], queue="lonely")
    # While nobody serves `lonely`, the task stays queued and nothing runs it.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert cluster.meta(tid) is None, "task for an unserved queue ran"
        time.sleep(0.05)
    (q,) = [q for q in client.control("queues") if q["name"] == "lonely"]
    assert q["ready"] == 1 and q["consumers"] == 0

    cluster.start_worker(queues=["lonely"], concurrency=1)
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "SUCCESS" and meta["result"] == 42
    wait_until(lambda: [q for q in client.control("queues") if q["name"] == "lonely"][0]["ready"] == 0,
               5, message="lonely queue to drain")


def test_default_queue(cluster, broker, client):
    """No queue in the task and no -Q on the worker: both mean `default`."""
    w = cluster.start_worker(queues=None, concurrency=1)
    tid = client.submit_ok("builtin.add", args=[1, 2])
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "SUCCESS" and meta["result"] == 3
    (entry,) = [e for e in client.control("workers") if e["name"] == w.name]
    assert entry["queues"] == ["default"]


def test_one_worker_serves_several_queues(cluster, broker, client):
    cluster.start_worker(queues=["a", "b"], concurrency=1)
    ta = client.submit_ok("builtin.add", args=[1, 1], queue="a")
    tb = client.submit_ok("builtin.add", args=[2, 2], queue="b")
    assert cluster.wait_result(ta)["result"] == 2
    assert cluster.wait_result(tb)["result"] == 4


def test_work_is_spread_over_workers_of_a_queue(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    w1 = cluster.start_worker(queues=["fair"], concurrency=1, prefetch=1)
    w2 = cluster.start_worker(queues=["fair"], concurrency=1, prefetch=1)
    msgs = [task_message("builtin.sleep", args=[0.05], queue="fair") for _ in range(20)]
    assert all(r.accepted for r in client.submit_many(msgs))
    started = events.wait_count("task-started", 20, ids={m["id"] for m in msgs}, timeout=30)
    counts = {w1.name: 0, w2.name: 0}
    for e in started:
        counts[e["worker"]] += 1
    assert min(counts.values()) >= 5, f"unfair spread {counts}"
