"""Issue 2, scenario 6: the broker restarted on the same endpoints; workers
notice (heartbeats, or ERROR unknown-worker), reconnect and announce
themselves again without being restarted, and work continues."""

from conftest import wait_until


def test_workers_reconnect_to_restarted_broker(cluster):
    old = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    w1 = cluster.start_worker(queues=["rs"], concurrency=1)
    w2 = cluster.start_worker(queues=["rs2"], concurrency=1)
    before = client.submit_ok("builtin.add", args=[1, 2], queue="rs")
    assert cluster.wait_result(before)["result"] == 3

    rc = old.proc.stop()
    assert rc == 0, f"broker exited {rc} on SIGTERM"
    new = cluster.start_broker(heartbeat_ms=200, liveness=3, port=old.port,
                               events_port=old.events_port)
    client = cluster.client(broker=new)

    def both_back():
        names = {w["name"] for w in client.control("workers") if w.get("online", True)}
        return {w1.name, w2.name} <= names
    wait_until(both_back, 20, interval=0.1, message="workers to HELLO the new broker")

    pids = (w1.pid, w2.pid)
    ids = [client.submit_ok("builtin.add", args=[i, i], queue=q)
           for i in range(10) for q in ("rs", "rs2")]
    metas = cluster.wait_results(ids, timeout=20)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}
    assert w1.proc.alive() and w2.proc.alive()
    assert (w1.pid, w2.pid) == pids


def test_task_submitted_while_no_worker_survives_restart_window(cluster):
    """A task queued at the new broker before the workers come back runs
    once they reconnect (the worker re-sends HELLO with fresh credit)."""
    old = cluster.start_broker(heartbeat_ms=200, liveness=3)
    w = cluster.start_worker(queues=["rs"], concurrency=1)
    old.proc.stop()
    new = cluster.start_broker(heartbeat_ms=200, liveness=3, port=old.port,
                               events_port=old.events_port)
    client = cluster.client(broker=new)
    tid = client.submit_ok("builtin.add", args=[40, 2], queue="rs")
    meta = cluster.wait_result(tid, timeout=20)
    assert meta["status"] == "SUCCESS" and meta["result"] == 42
    assert w.proc.alive()
