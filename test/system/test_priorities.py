"""Issue 2, scenario 1: a worker of concurrency 1 runs tasks in priority order
(9 first), FIFO within a level. Execution order is read from the broker's
task-started events: with one worker running one task at a time, the order
the broker publishes them is the order they ran."""

import random

from ztp import task_message


def _expected_order(msgs):
    ranked = sorted(enumerate(msgs), key=lambda im: (-im[1]["priority"], im[0]))
    return [m["id"] for _, m in ranked]


def _first_difference(got, want, msgs):
    prio = {m["id"]: m["priority"] for m in msgs}
    index = {m["id"]: i for i, m in enumerate(msgs)}
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return (f"position {i}: ran {g} (priority {prio.get(g)}, sent #{index.get(g)}), "
                    f"expected {w} (priority {prio[w]}, sent #{index[w]}); "
                    f"priorities run: {[prio.get(x) for x in got[max(0, i - 5):i + 5]]}")
    return f"lengths differ: {len(got)} vs {len(want)}"


def test_200_mixed_priorities_sent_before_worker_connects(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    rng = random.Random(20240602)
    msgs = [task_message("builtin.noop", queue="prio", priority=rng.randint(0, 9))
            for _ in range(200)]
    replies = client.submit_many(msgs)
    assert [r.name for r in replies] == ["ACCEPTED"] * 200, [r for r in replies if not r.accepted][:3]
    ids = {m["id"] for m in msgs}

    # All 200 queued, by priority, before any worker exists.
    (q,) = [q for q in client.control("queues") if q["name"] == "prio"]
    assert q["ready"] == 200
    by_prio = [0] * 10
    for m in msgs:
        by_prio[m["priority"]] += 1
    assert q["by_priority"] == by_prio

    worker = cluster.start_worker(queues=["prio"], concurrency=1)
    started = events.wait_count("task-started", 200, ids=ids, timeout=60)
    got = [e["id"] for e in started]
    want = _expected_order(msgs)
    assert len(set(got)) == 200, "a task started twice"
    assert got == want, _first_difference(got, want, msgs)
    assert all(e.get("worker") == worker.name for e in started)

    metas = cluster.wait_results(ids, timeout=30)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}


def test_priorities_while_worker_is_busy(cluster, broker, client):
    """Tasks that arrive while the only worker (credit 1) is busy run by
    priority once it is free: the broker, not arrival order, decides."""
    events = cluster.events()
    events.sync(client)
    worker = cluster.start_worker(queues=["busy"], concurrency=1, prefetch=1)
    blocker = client.submit_ok("builtin.sleep", args=[1.5], queue="busy")
    events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == blocker,
                    timeout=10, what="blocker to start")
    rng = random.Random(7)
    msgs = [task_message("builtin.noop", queue="busy", priority=rng.randint(0, 9))
            for _ in range(50)]
    assert all(r.accepted for r in client.submit_many(msgs))
    # All 50 must be queued while the blocker still runs, or the test proves nothing.
    assert not cluster.meta(blocker) or cluster.meta(blocker)["status"] not in ("SUCCESS",)
    ids = {m["id"] for m in msgs}
    started = events.wait_count("task-started", 50, ids=ids, timeout=30)
    got = [e["id"] for e in started]
    want = _expected_order(msgs)
    assert got == want, _first_difference(got, want, msgs)
    assert cluster.wait_result(blocker)["status"] == "SUCCESS"
    assert worker.proc.alive()
