"""Issue 2, scenario 5: acks-late. A worker SIGKILLed mid-task loses no
work: once the broker misses its heartbeats the task is redelivered to
another worker and ends SUCCESS; out of 1,000 tasks none is lost when a
worker dies halfway."""


import pytest

from conftest import wait_until
from ztp import task_message


def test_worker_killed_mid_task_is_redelivered(cluster):
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    events = cluster.events()
    events.sync(client)
    victim = cluster.start_worker(queues=["kill"], concurrency=1)
    tid = client.submit_ok("builtin.sleep", args=[1.0], queue="kill")
    first = events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == tid,
                            timeout=10, what="task to start on the victim")
    assert first["worker"] == victim.name
    rescuer = cluster.start_worker(queues=["kill"], concurrency=1)
    victim.kill()

    meta = cluster.wait_result(tid, timeout=20)
    assert meta["status"] == "SUCCESS", meta
    assert meta["result"] == 1.0
    starts = events.wait_count("task-started", 2, ids=[tid], timeout=5)
    assert starts[-1]["worker"] == rescuer.name, starts
    offline = events.wait_for(lambda e: e["type"] == "worker-offline"
                              and e.get("worker") == victim.name, timeout=5)
    assert offline["reason"] == "heartbeat-lost"
    stats = client.control("stats")
    assert stats["redelivered"] >= 1, stats
    assert victim.name not in [w["name"] for w in client.control("workers") if w.get("online", True)]


@pytest.mark.slow
@pytest.mark.zt_timeout(150)
def test_no_task_lost_out_of_1000_with_a_worker_killed(cluster):
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client(timeout=15)
    victim = cluster.start_worker(queues=["bulk"], concurrency=2)
    survivor = cluster.start_worker(queues=["bulk"], concurrency=2)
    msgs = [task_message("builtin.sleep", args=[0.004], queue="bulk") for _ in range(1000)]
    replies = client.submit_many(msgs)
    assert sum(r.accepted for r in replies) == 1000, [r for r in replies if not r.accepted][:3]

    def progressed():
        s = client.control("stats")
        return s["succeeded"] >= 250 and s
    wait_until(progressed, 60, interval=0.02, message="250 tasks to succeed")
    in_flight_at_victim = [w for w in client.control("workers") if w["name"] == victim.name]
    victim.kill()

    metas = cluster.wait_results([m["id"] for m in msgs], timeout=90)
    statuses = {}
    for m in metas.values():
        statuses[m["status"]] = statuses.get(m["status"], 0) + 1
    assert statuses == {"SUCCESS": 1000}, statuses
    assert survivor.proc.alive()
    stats = client.control("stats")
    if in_flight_at_victim and in_flight_at_victim[0].get("in_flight"):
        assert stats["redelivered"] >= 1, stats
    # Every queue is empty: nothing left behind.
    wait_until(lambda: all(q["ready"] == 0 and q["in_flight"] == 0
                           for q in client.control("queues") if q["name"] == "bulk"),
               10, message="bulk queue to drain")


def test_warm_shutdown_releases_reserved_tasks(cluster):
    """SIGTERM: the worker finishes its running task, hands back the ones it
    holds but has not started (RELEASE), and exits 0; another worker runs them."""
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    events = cluster.events()
    events.sync(client)
    leaving = cluster.start_worker(queues=["warm"], concurrency=1, prefetch=4)
    msgs = [task_message("builtin.sleep", args=[0.5], queue="warm") for _ in range(4)]
    assert all(r.accepted for r in client.submit_many(msgs))
    ids = {m["id"] for m in msgs}
    first = events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") in ids,
                            timeout=10)
    assert first["worker"] == leaving.name
    rc = leaving.proc.stop()
    assert rc == 0, f"worker warm shutdown exited {rc}"
    assert cluster.wait_result(first["id"], timeout=5)["status"] == "SUCCESS", \
        "warm shutdown did not finish the running task"
    cluster.start_worker(queues=["warm"], concurrency=2)
    metas = cluster.wait_results([m["id"] for m in msgs], timeout=20)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}
    offline = events.wait_for(lambda e: e["type"] == "worker-offline"
                              and e.get("worker") == leaving.name, timeout=5)
    assert offline["reason"] == "bye"
    # Released tasks ran once elsewhere, not twice.
    for m in msgs:
        assert len(events.snapshot("task-started", m["id"])) == 1, m["id"]
