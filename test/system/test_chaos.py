"""Issue 4, chaos suite: the whole cluster under faults (test/system/chaos.py
is the driver; it also runs standalone for a long soak, docs/DURABILITY.md).

test_chaos_suite: 10,000 tasks of mixed queues, priorities and kinds across
three zmqworkers while workers are SIGKILLed every few seconds, the broker
twice and Redis once; every accepted task has its final state in Redis, none
lost; reruns counted; everything still serves. Its last line,
`accepted / finished / lost / rerun: A / F / L / R`, is printed with -s and
in the run's closing summary ("zt summary").
Environment: ZT_CHAOS_TASKS (default 10000), ZT_CHAOS_SECONDS (submission
period, default 40), ZT_CHAOS_SEED (default random, printed).

The other tests pin down what chaos found, one fault at a time.
"""

import os
import re
import sys
import json
import time
import uuid
from pathlib import Path

import pytest

import chaos
import ztp
from conftest import BIN_DIR, wait_until


@pytest.mark.slow
@pytest.mark.zt_timeout(420)
def test_chaos_suite(tmp_path, summary_lines):
    tasks = int(os.environ.get("ZT_CHAOS_TASKS", "10000"))
    seconds = float(os.environ.get("ZT_CHAOS_SECONDS", "40"))
    seed = os.environ.get("ZT_CHAOS_SEED")
    run = chaos.ChaosRun(BIN_DIR, tmp_path, tasks=tasks, submit_seconds=seconds,
                         worker_kill_every=3.0, broker_kills=2, redis_restarts=1,
                         seed=int(seed) if seed else None, settle_seconds=120.0,
                         stop_timeout=float(os.environ.get("ZT_TEST_STOP_TIMEOUT", "15")),
                         out=sys.stdout)
    # the run stops every process it started, whatever happens inside
    run.run()
    summary_lines.append(run.summary_line())
    assert run.counts["worker_kills"] >= seconds // 3 - 2
    assert run.counts["broker_kills"] == 2 and run.counts["redis_restarts"] == 1
    assert not run.problems, "\n".join(run.problems)
    assert run.accepted == tasks, f"{len(run.not_accepted)} tasks never accepted"
    assert run.lost == 0, f"lost: {run.lost_ids[:20]}"
    assert not run.wrong, f"wrong final states: {run.wrong[:20]}"
    assert run.finished == tasks


def started_count(worker, tid):
    text = Path(worker.proc.logfile).read_text(errors="replace")
    return len(re.findall(rf"task started: [^\[]*\[{re.escape(tid)}\]", text))


@pytest.mark.zt_timeout(60)
def test_done_sent_while_broker_restarts_is_not_lost_nor_rerun(cluster):
    """The task finishes while the broker is dead; its DONE goes to a dead
    connection (or to the new broker, which answers ERROR unknown-worker).
    The restarted broker replays the task as in flight and redelivers it:
    the worker sends the DONE again after its new HELLO and answers the
    redelivery without running the task twice; the result is written once."""
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    w = cluster.start_worker(queues=["dr"], concurrency=1)
    pubsub = cluster.redis.pubsub()
    tid = "done-restart-" + str(time.time_ns())
    pubsub.subscribe(f"celery-task-meta-{tid}")
    wait_until(lambda: pubsub.get_message(timeout=0.1), 5, message="the subscription")
    assert client.submit_ok("builtin.sleep", args=[1.0], queue="dr", id=tid) == tid
    wait_until(lambda: started_count(w, tid) == 1, 10, message="the task to start")
    b1.proc.kill()
    wait_until(lambda: f"task succeeded: builtin.sleep[{tid}]" in
               Path(w.proc.logfile).read_text(errors="replace"), 10,
               message="the task to finish while the broker is down")
    b2 = cluster.start_broker(heartbeat_ms=200, liveness=3, port=b1.port,
                              events_port=b1.events_port)
    client = cluster.client(broker=b2)
    assert cluster.wait_result(tid, timeout=10)["status"] == "SUCCESS"

    def settled():
        qs = {q["name"]: q for q in client.control("queues")}
        q = qs.get("dr")
        return q is not None and q["ready"] == 0 and q["in_flight"] == 0
    wait_until(settled, 15, interval=0.1, message="the new broker to hold nothing of the task")
    # a later task still runs, after which nothing else of tid can be pending
    after = client.submit_ok("builtin.add", args=[1, 2], queue="dr")
    assert cluster.wait_result(after)["result"] == 3
    assert started_count(w, tid) == 1, "the task ran again after the broker restart"
    published = []
    while True:
        m = pubsub.get_message(timeout=0.2)
        if m is None:
            break
        if m["type"] == "message":
            published.append(m["data"])
    pubsub.close()
    assert sum('"SUCCESS"' in p for p in published) == 1, published
    assert w.proc.alive()


@pytest.mark.zt_timeout(60)
def test_worker_sigkill_during_redis_outage_loses_nothing(cluster, own_redis):
    """Results held for an absent Redis die with a SIGKILLed worker; their
    DONEs were never sent (acks-late), so the broker redelivers the tasks to
    the other worker and every result reaches Redis once it is back."""
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    w1 = cluster.start_worker(queues=["ko"], concurrency=2)
    own_redis.kill()
    ids = [client.submit_ok("builtin.add", args=[i, 1], queue="ko") for i in range(30)]
    wait_until(lambda: Path(w1.proc.logfile).read_text(errors="replace")
               .count("task succeeded") >= 30, 15, message="w1 to run everything")
    w1.kill()
    w2 = cluster.start_worker(queues=["ko"], concurrency=2)
    own_redis.start()
    metas = cluster.wait_results(ids, timeout=20)
    assert [metas[t]["result"] for t in ids] == [i + 1 for i in range(30)]
    assert w2.proc.alive()


@pytest.mark.zt_timeout(60)
def test_resubmitted_id_is_deduplicated_while_held_and_after_it_finished(cluster):
    """What the chaos client relies on: a SUBMIT repeated with the same id
    (its ACCEPTED was lost) is answered REJECTED duplicate-id while the
    broker holds the task, also after a crash (the journal brought it back),
    and that reply, like ACCEPTED, waits for the journal. Once the task has
    finished the broker still remembers its id (the last 65,536 finished,
    across restarts): a repeat is refused, not run again."""
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    msg = ztp.task_message("builtin.add", args=[1, 2], queue="dup")
    assert client.submit(msg).accepted
    again = client.submit(msg)
    assert again.rejected and again.code == "duplicate-id", again
    b1.proc.kill()
    b2 = cluster.start_broker(heartbeat_ms=200, liveness=3, port=b1.port,
                              events_port=b1.events_port)
    client = cluster.client(broker=b2)
    again = client.submit(msg)
    assert again.rejected and again.code == "duplicate-id", again
    w = cluster.start_worker(queues=["dup"], concurrency=1)
    assert cluster.wait_result(msg["id"])["result"] == 3
    wait_until(lambda: "task succeeded" in Path(w.proc.logfile).read_text(), 5,
               message="the worker to log the task")
    wait_until(lambda: not any(q["in_flight"] or q["ready"] for q in client.control("queues")
                               if q["name"] == "dup"), 10, message="the broker to forget it")
    again = client.submit(msg)
    assert again.rejected and again.code == "duplicate-id", again
    b2.proc.stop()
    b3 = cluster.start_broker(heartbeat_ms=200, liveness=3, port=b1.port,
                              events_port=b1.events_port)
    client = cluster.client(broker=b3)
    again = client.submit(msg)
    assert again.rejected and again.code == "duplicate-id", again
    time.sleep(0.5)
    assert started_count(w, msg["id"]) == 1


@pytest.mark.zt_timeout(60)
def test_rerun_that_dies_does_not_hide_the_first_result(cluster, broker, client):
    """Found by chaos (a task lost): a redelivered task's second run wrote
    STARTED over the first run's SUCCESS, then its worker was killed; the
    first worker answered the next redelivery from memory, so Redis kept
    STARTED for good. Now STARTED/PROGRESS/RETRY never replace a result."""
    # the first run's result, as its worker wrote it (Celery's layout); the
    # broker never saw this id, so it takes the task as a redelivery would
    tid = str(uuid.uuid4())
    cluster.redis.set(f"celery-task-meta-{tid}", json.dumps(
        {"status": "SUCCESS", "result": 42, "traceback": None, "children": [],
         "date_done": "2026-01-01T00:00:00.000000", "task_id": tid}))
    assert cluster.wait_result(tid)["result"] == 42
    w2 = cluster.start_worker(queues=["rr"], concurrency=1)
    assert client.submit_ok("builtin.progress", args=[50, 0.05], queue="rr", id=tid) == tid
    wait_until(lambda: started_count(w2, tid) == 1, 10, message="the second run to start")
    time.sleep(0.5)  # STARTED (after 50 ms) and PROGRESS (every 100 ms) were due
    meta = cluster.meta(tid)
    assert meta["status"] == "SUCCESS" and meta["result"] == 42, meta
    w2.kill()
    meta = cluster.meta(tid)
    assert meta["status"] == "SUCCESS" and meta["result"] == 42, meta
