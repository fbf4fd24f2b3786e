"""CONTROL operations of PROTOCOL.md §5.2 through the Python peer: ping,
queues (depths per priority), workers, revoke (queued, scheduled, running,
unknown), purge, scheduled, active, reserved, registered, stats."""

import time

from conftest import wait_until
from ztp import task_message


def test_ping(client):
    r = client.control("ping")
    assert r["pong"] is True and isinstance(r["broker"], str) and r["uptime"] >= 0


def test_queues_depth_per_priority(cluster, broker, client):
    msgs = ([task_message("builtin.noop", queue="depth", priority=0) for _ in range(3)]
            + [task_message("builtin.noop", queue="depth", priority=7) for _ in range(2)]
            + [task_message("builtin.noop", queue="depth", countdown=60)])
    assert all(r.accepted for r in client.submit_many(msgs))
    (q,) = [q for q in client.control("queues") if q["name"] == "depth"]
    assert q["ready"] == 5
    assert q["scheduled"] == 1
    assert q["in_flight"] == 0 and q["consumers"] == 0
    assert len(q["by_priority"]) == 10
    assert q["by_priority"][0] == 3 and q["by_priority"][7] == 2 and sum(q["by_priority"]) == 5


def test_workers_listing(cluster, broker, client):
    w = cluster.start_worker(queues=["wl1", "wl2"], concurrency=2, prefetch=3)
    (entry,) = [e for e in client.control("workers") if e["name"] == w.name]
    assert entry["queues"] == ["wl1", "wl2"]
    assert entry["concurrency"] == 2
    assert entry["pid"] == w.pid
    assert entry["credit"] + entry["in_flight"] == 6, entry
    assert entry["online"] is True
    assert 0 <= entry["heartbeat_age"] < 5
    assert isinstance(entry["host"], str) and entry["host"]
    tid = client.submit_ok("builtin.noop", queue="wl2")
    cluster.wait_result(tid)
    wait_until(lambda: [e for e in client.control("workers")
                        if e["name"] == w.name][0]["processed"] >= 1, 5,
               message="processed counter")
    (q,) = [q for q in client.control("queues") if q["name"] == "wl1"]
    assert q["consumers"] == 1


def test_registered(cluster, broker, client):
    w = cluster.start_worker(queues=["reg"], concurrency=1)
    reg = client.control("registered")
    assert w.name in reg
    for name in ("builtin.noop", "builtin.add", "builtin.sleep", "builtin.fail",
                 "builtin.flaky", "builtin.progress", "builtin.echo"):
        assert name in reg[w.name], (name, reg[w.name])


def test_revoke_queued_task(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    tid = client.submit_ok("builtin.add", args=[1, 1], queue="rv")
    keep = client.submit_ok("builtin.add", args=[2, 2], queue="rv")
    r = client.control("revoke", id=tid, terminate=False, signal="SIGTERM")
    assert r == {"id": tid, "state": "queued"} or (r["id"] == tid and r["state"] == "queued"), r
    cluster.start_worker(queues=["rv"], concurrency=1)
    assert cluster.wait_result(tid)["status"] == "REVOKED"
    assert cluster.wait_result(keep)["result"] == 4
    ev = events.wait_for(lambda e: e["type"] == "task-revoked" and e.get("id") == tid, timeout=5)
    assert ev["reason"] == "revoked"
    assert not events.snapshot("task-started", tid)


def test_revoke_scheduled_task(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["rv"], concurrency=1)
    tid = client.submit_ok("builtin.noop", queue="rv", countdown=30)
    assert client.control("revoke", id=tid)["state"] == "scheduled"
    assert cluster.wait_result(tid, timeout=5)["status"] == "REVOKED"
    assert tid not in [s["id"] for s in client.control("scheduled")]
    assert not events.snapshot("task-started", tid)


def test_revoke_running_task_discards_result(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["rv"], concurrency=1)
    tid = client.submit_ok("builtin.sleep", args=[0.6], queue="rv")
    events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == tid, timeout=10)
    assert client.control("revoke", id=tid)["state"] == "running"
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "REVOKED", meta


def test_revoke_unknown_id(client):
    assert client.control("revoke", id="never-seen-1234")["state"] == "unknown"


def test_purge_one_queue(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    gone = [task_message("builtin.noop", queue="pq") for _ in range(5)]
    kept = [task_message("builtin.noop", queue="pq-other") for _ in range(2)]
    assert all(r.accepted for r in client.submit_many(gone + kept))
    assert client.control("purge", queue="pq")["purged"] == 5
    depth = {q["name"]: q["ready"] for q in client.control("queues")}
    assert depth.get("pq", 0) == 0 and depth["pq-other"] == 2
    cluster.start_worker(queues=["pq", "pq-other"], concurrency=1)
    metas = cluster.wait_results([m["id"] for m in gone + kept], timeout=15)
    assert [metas[m["id"]]["status"] for m in gone] == ["REVOKED"] * 5
    assert [metas[m["id"]]["status"] for m in kept] == ["SUCCESS"] * 2
    for m in gone:
        assert not events.snapshot("task-started", m["id"])
    reasons = {e["reason"] for e in events.snapshot("task-revoked") if e["id"] in
               {m["id"] for m in gone}}
    assert reasons == {"purged"}


def test_purge_all_queues(cluster, broker, client):
    msgs = [task_message("builtin.noop", queue=q) for q in ("pa", "pb", "pc")]
    assert all(r.accepted for r in client.submit_many(msgs))
    assert client.control("purge")["purged"] >= 3
    assert all(q["ready"] == 0 for q in client.control("queues"))


def test_scheduled_active_reserved(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=["insp"], concurrency=1, prefetch=3)
    later = client.submit_ok("builtin.noop", queue="insp", countdown=30, priority=4)
    running = client.submit_ok("builtin.sleep", args=[1.5], queue="insp")
    events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == running, timeout=10)
    waiting = [client.submit_ok("builtin.noop", queue="insp") for _ in range(2)]

    sched = client.control("scheduled")
    (s,) = [s for s in sched if s["id"] == later]
    assert s["task"] == "builtin.noop" and s["queue"] == "insp" and s["priority"] == 4
    assert s["eta"] > time.time() + 20

    active = client.control("active")
    (a,) = [a for a in active if a["id"] == running]
    assert a["worker"] == w.name and a["task"] == "builtin.sleep" and a["queue"] == "insp"

    def reserved_ids():
        return {r["id"] for r in client.control("reserved") if r.get("worker") == w.name}
    wait_until(lambda: set(waiting) <= reserved_ids(), 5, message="reserved tasks listed")
    assert running not in reserved_ids()
    client.control("revoke", id=later)
    metas = cluster.wait_results(waiting + [running], timeout=15)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}
    assert not [a for a in client.control("active") if a["id"] == running]


def test_stats_counters(cluster, broker, client):
    cluster.start_worker(queues=["st"], concurrency=1)
    base = client.control("stats")
    for key in ("submitted", "accepted", "rejected", "dispatched", "succeeded", "failed",
                "retried", "revoked", "expired", "redelivered", "protocol_errors", "workers",
                "uptime"):
        assert key in base, key
    ok = client.submit_ok("builtin.noop", queue="st")
    bad = client.submit_ok("builtin.fail", args=["x"], queue="st", max_retries=0)
    rej = client.submit(task_message("builtin.noop", priority=99))
    assert rej.rejected
    cluster.wait_results([ok, bad])

    def counted():
        s = client.control("stats")
        return s["succeeded"] >= base["succeeded"] + 1 and s["failed"] >= base["failed"] + 1 and s
    s = wait_until(counted, 5, message="stats to count the outcomes")
    assert s["accepted"] == base["accepted"] + 2
    assert s["rejected"] == base["rejected"] + 1
    assert s["dispatched"] >= base["dispatched"] + 2
    assert s["workers"] >= 1


def test_events_stream(cluster, broker, client):
    """The events socket carries worker and task life cycles as msgpack with
    type and timestamp, frame 0 naming the type."""
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=["evq"], concurrency=1)
    tid = client.submit_ok("builtin.progress", args=[3, 0.12], queue="evq", priority=3)
    cluster.wait_result(tid)
    events.wait_for(lambda e: e["type"] == "task-succeeded" and e.get("id") == tid, timeout=5)
    online = events.wait_for(lambda e: e["type"] == "worker-online" and e.get("worker") == w.name,
                             timeout=5)
    assert online["queues"] == ["evq"] and online["concurrency"] == 1 and online["pid"] == w.pid
    types = [e["type"] for e in events.snapshot(id_=tid)]
    assert types[0] == "task-received" and types[-1] == "task-succeeded", types
    assert "task-started" in types and "task-progress" in types, types
    for e in events.snapshot():
        assert e["_frame0"] == e["type"]
        assert isinstance(e["timestamp"], float) and abs(e["timestamp"] - time.time()) < 60
    rec = events.snapshot("task-received", tid)[0]
    assert rec["name"] == "builtin.progress" and rec["queue"] == "evq" and rec["priority"] == 3
    prog = events.snapshot("task-progress", tid)[-1]
    assert prog["total"] == 3 and prog["worker"] == w.name
    events.wait_for(lambda e: e["type"] == "worker-heartbeat" and e.get("worker") == w.name,
                    timeout=5)
    assert not events.errors
