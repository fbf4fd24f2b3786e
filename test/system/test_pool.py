"""Issue 3, the worker's execution model on real processes: hard and soft time
limits, children recycled by task count and memory, progress reaching both
the events stream and Redis (coalesced), cold shutdown with redelivery, warm
shutdown with neither loss nor duplicates, and revoke --terminate."""

import json
import os
import signal
import time

import pytest

from conftest import wait_until
from test_retries import exc_text

pytestmark = pytest.mark.issue3


def started_pid(events, task_id, timeout=10):
    e = events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == task_id,
                        timeout=timeout, what=f"task-started of {task_id}")
    return e["pid"]


def test_hard_time_limit_kills_child_and_refills_slot(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=["limits"], concurrency=1)
    t0 = time.monotonic()
    tid = client.submit_ok("builtin.sleep", args=[30], queue="limits", time_limit=1.0,
                           max_retries=0)
    old_pid = started_pid(events, tid)
    meta = cluster.wait_result(tid, timeout=10)
    elapsed = time.monotonic() - t0
    assert meta["status"] == "FAILURE", meta
    assert "TimeLimitExceeded" in exc_text(meta), meta
    assert 0.9 <= elapsed < 5, f"hard limit of 1 s took {elapsed:.2f} s"
    # A new child took the slot and serves the next task.
    nxt = client.submit_ok("builtin.add", args=[1, 2], queue="limits")
    assert cluster.wait_result(nxt, timeout=10)["result"] == 3
    assert started_pid(events, nxt) != old_pid, "the killed child was not replaced"
    assert w.proc.alive()


def test_hard_time_limit_is_retried_when_policy_allows(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["limits"], concurrency=1)
    tid = client.submit_ok("builtin.sleep", args=[30], queue="limits", time_limit=0.5,
                           max_retries=1, retry_delay=0.1)
    meta = cluster.wait_result(tid, timeout=15)
    assert meta["status"] == "FAILURE" and "TimeLimitExceeded" in exc_text(meta), meta
    assert len(events.snapshot("task-retried", tid)) == 1
    assert len(events.snapshot("task-started", tid)) == 2


def test_soft_time_limit_lets_the_task_return(cluster, broker, client):
    """At the soft limit the task is told (signal + flag) and ends on its own
    terms; the child is not killed."""
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["limits"], concurrency=1)
    t0 = time.monotonic()
    tid = client.submit_ok("builtin.sleep", args=[30], queue="limits", soft_time_limit=0.5,
                           time_limit=10, max_retries=0)
    pid = started_pid(events, tid)
    meta = cluster.wait_result(tid, timeout=10)
    elapsed = time.monotonic() - t0
    assert meta["status"] == "FAILURE" and "SoftTimeLimitExceeded" in exc_text(meta), meta
    assert elapsed < 3, f"soft limit of 0.5 s took {elapsed:.2f} s"
    nxt = client.submit_ok("builtin.noop", queue="limits")
    cluster.wait_result(nxt, timeout=10)
    assert started_pid(events, nxt) == pid, "a soft limit must not kill the child"


def test_max_tasks_per_child_replaces_children(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["recycle"], concurrency=1,
                         extra=["--max-tasks-per-child", "3"])
    pids = []
    for _ in range(7):  # one at a time, so the order of pids is the order of tasks
        tid = client.submit_ok("builtin.noop", queue="recycle")
        cluster.wait_result(tid, timeout=10)
        pids.append(started_pid(events, tid))
    assert pids[0] == pids[1] == pids[2], pids
    assert pids[3] == pids[4] == pids[5] and pids[3] != pids[0], pids
    assert pids[6] not in (pids[0], pids[3]), pids


def test_children_run_as_batch_work_unless_the_worker_chose_a_policy(cluster, broker, client):
    """Pool children take SCHED_BATCH (no wakeup preemption of the parent);
    the parent keeps the default policy, and a worker put under another
    policy by its operator passes that on to new children unchanged."""
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=["policy"], concurrency=1,
                             extra=["--max-tasks-per-child", "1"])
    tid = client.submit_ok("builtin.sleep", args=[0.5], queue="policy")
    child = started_pid(events, tid)
    assert os.sched_getscheduler(child) == os.SCHED_BATCH
    assert os.sched_getscheduler(w.pid) == os.SCHED_OTHER
    assert cluster.wait_result(tid, timeout=10)["status"] == "SUCCESS"

    # The operator runs the worker as idle-time work. The child forked when the
    # first task ended may predate that; the one forked after the next task
    # (one task per child) inherits SCHED_IDLE and keeps it.
    os.sched_setscheduler(w.pid, os.SCHED_IDLE, os.sched_param(0))
    pids, policies = [], []
    for _ in range(2):
        tid = client.submit_ok("builtin.sleep", args=[0.5], queue="policy")
        pids.append(started_pid(events, tid))
        policies.append(os.sched_getscheduler(pids[-1]))  # while it runs the task
        assert cluster.wait_result(tid, timeout=10)["status"] == "SUCCESS"
    assert len({child, *pids}) == 3, f"children not replaced after one task: {child} {pids}"
    assert policies[1] == os.SCHED_IDLE, policies


def test_max_memory_per_child_replaces_children(cluster, broker, client):
    """A limit below any real RSS: every child is replaced after its task."""
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["recycle"], concurrency=1,
                         extra=["--max-memory-per-child", "1"])
    pids = []
    for _ in range(3):
        tid = client.submit_ok("builtin.noop", queue="recycle")
        assert cluster.wait_result(tid, timeout=10)["status"] == "SUCCESS"
        pids.append(started_pid(events, tid))
    assert len(set(pids)) == 3, pids


def test_progress_reaches_events_and_redis(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["progress"], concurrency=1)
    pubsub = cluster.redis.pubsub()
    tid = "progress-" + str(time.monotonic_ns())
    pubsub.subscribe(f"celery-task-meta-{tid}")
    wait_until(lambda: pubsub.get_message(timeout=0.1), 5, message="redis subscribe")
    client.submit_ok("builtin.progress", args=[5, 0.15], queue="progress", id=tid)
    assert cluster.wait_result(tid, timeout=15)["status"] == "SUCCESS"
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.2)
        if m and m["type"] == "message":
            meta = json.loads(m["data"])
            seen.append(meta)
            if meta["status"] == "SUCCESS":
                break
    pubsub.close()
    redis_progress = [m["result"] for m in seen if m["status"] == "PROGRESS"]
    assert redis_progress, f"no PROGRESS state published in Redis: {seen}"
    assert set(redis_progress[-1]) == {"current", "total", "message"}
    assert redis_progress[-1]["current"] == 5 and redis_progress[-1]["total"] == 5
    # Events travel apart from Redis: the last one may land just after SUCCESS.
    last = events.wait_for(lambda e: e["type"] == "task-progress" and e.get("id") == tid
                           and e.get("current") == 5, timeout=5, what="the last progress event")
    assert last["total"] == 5


def test_short_tasks_are_announced_by_their_done(cluster, broker, client):
    """A task that ends within the worker's 10 ms hold-back is announced by
    its DONE alone (PROTOCOL.md §6.3): the events stream still shows exactly one
    task-started, with the child's pid, before the outcome, and before any
    progress; a longer task gets its STARTED while it runs."""
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=["announce"], concurrency=1)
    quick = [client.submit_ok("builtin.noop", queue="announce") for _ in range(5)]
    stepped = client.submit_ok("builtin.progress", args=[3, 0], queue="announce")
    slow = client.submit_ok("builtin.sleep", args=[0.5], queue="announce")
    # the slow task is started (and said so) well before it ends
    started = events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == slow,
                              timeout=15, what="task-started of the slow task")
    assert not events.snapshot("task-succeeded", slow), "STARTED of a 0.5 s task came late"
    assert started["pid"] > 0 and started["worker"] == w.name
    ids = quick + [stepped, slow]
    events.wait_count("task-succeeded", len(ids), ids=ids, timeout=15)
    for tid in ids:
        mine = [e for e in events.snapshot(id_=tid)
                if e["type"] in ("task-started", "task-progress", "task-succeeded")]
        kinds = [e["type"] for e in mine]
        assert kinds.count("task-started") == 1, (tid, kinds)
        assert kinds[0] == "task-started" and kinds[-1] == "task-succeeded", (tid, kinds)
        assert mine[0]["pid"] > 0 and mine[0]["worker"] == w.name, mine[0]
    assert "task-progress" in [e["type"] for e in events.snapshot(id_=stepped)]


def test_progress_is_coalesced_but_the_last_always_arrives(cluster, broker, client):
    """500 updates in about half a second reach the broker as a handful."""
    events = cluster.events()
    events.sync(client)
    cluster.start_worker(queues=["progress"], concurrency=1)
    t0 = time.monotonic()
    tid = client.submit_ok("builtin.progress", args=[500, 0.001], queue="progress")
    assert cluster.wait_result(tid, timeout=15)["status"] == "SUCCESS"
    run = time.monotonic() - t0
    got = events.wait_for(lambda e: e["type"] == "task-progress" and e.get("id") == tid
                          and e.get("current") == 500, timeout=5, what="the last progress")
    count = len(events.snapshot("task-progress", tid))
    assert got and 1 <= count <= run * 10 + 3, f"{count} progress events in {run:.2f} s"


def test_cold_shutdown_kills_children_and_tasks_are_redelivered(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    leaving = cluster.start_worker(queues=["cold"], concurrency=1)
    tid = client.submit_ok("builtin.sleep", args=[3], queue="cold")
    started_pid(events, tid)
    t0 = time.monotonic()
    leaving.proc.popen.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    leaving.proc.popen.send_signal(signal.SIGQUIT)
    rc = leaving.proc.wait(5)
    assert rc is not None and time.monotonic() - t0 < 2.5, "cold shutdown did not stop at once"
    # The killed child never finished it, so nothing final is recorded yet.
    assert cluster.meta(tid) is None or cluster.meta(tid)["status"] not in ("SUCCESS",)
    other = cluster.start_worker(queues=["cold"], concurrency=1)
    meta = cluster.wait_result(tid, timeout=20)
    assert meta["status"] == "SUCCESS", meta
    starts = events.snapshot("task-started", tid)
    assert [e["worker"] for e in starts][-1] == other.name, starts


def test_warm_shutdown_500_tasks_no_loss_no_duplicate(cluster, broker, client):
    events = cluster.events()
    events.sync(client)
    staying = cluster.start_worker(queues=["warm500"], concurrency=2)
    leaving = cluster.start_worker(queues=["warm500"], concurrency=2)
    msgs = [{"id": f"warm-{i}-{time.monotonic_ns()}", "task": "builtin.sleep", "args": [0.01],
             "queue": "warm500"} for i in range(500)]
    replies = client.submit_many(msgs)
    assert all(r.accepted for r in replies)
    ids = [m["id"] for m in msgs]
    events.wait_count("task-succeeded", 250, timeout=60, ids=ids)
    assert leaving.stop() == 0, "warm shutdown must exit 0"
    metas = cluster.wait_results(ids, timeout=60)
    assert all(m["status"] == "SUCCESS" for m in metas.values())
    assert len(metas) == 500
    for tid in ids:
        assert len(events.snapshot("task-started", tid)) == 1, f"{tid} ran twice"
    assert staying.proc.alive()


@pytest.mark.parametrize("sig", [None, "SIGKILL"])
def test_revoke_terminate_stops_the_running_task(cluster, broker, client, sig):
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=["term"], concurrency=1)
    tid = client.submit_ok("builtin.sleep", args=[30], queue="term")
    pid = started_pid(events, tid)
    argv = ["revoke", tid, "--terminate"] + (["--signal", sig] if sig else [])
    res = cluster.zmqctl(*argv)
    assert res.rc == 0, res
    t0 = time.monotonic()
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "REVOKED", meta
    assert time.monotonic() - t0 < 5
    # The slot is refilled by a new child and the worker keeps serving.
    nxt = client.submit_ok("builtin.add", args=[2, 2], queue="term")
    assert cluster.wait_result(nxt, timeout=10)["result"] == 4
    assert started_pid(events, nxt) != pid
    assert w.proc.alive()
