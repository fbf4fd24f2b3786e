"""Issue 4, Redis faults: Redis down or restarted while workers run.

- Workers keep processing while Redis is away: tasks start and finish (the
  broker's task-started events, the worker's log), intake does not stall at
  the worker's credit, the results are held in the worker's buffer (stats
  `results_buffered`) and all reach Redis, with the right values, once it is
  back on the same port. DONE waits for Redis (acks-late): task-succeeded
  follows the result into Redis, so a worker that died meanwhile would have
  its tasks redelivered rather than lose their results.
- With --result-buffer-max N the buffer holds N writes: past it the oldest
  results are lost, each logged at WARN with task id and name and counted
  (stats `results_lost`), their tasks still reported done; the others reach
  Redis once it is back, and the worker keeps serving.
- The outage is logged once when it starts and once when it ends, not per
  retry.
"""

import re
from pathlib import Path

import pytest

import ztp

from conftest import RedisServer, wait_until

QUEUE = "rf"


def worker_log(worker):
    return Path(worker.proc.logfile).read_text(errors="replace")


def stats_of(cluster, client, worker):
    return cluster.inspect("stats", client=client)[worker.name]


def started_ids(events):
    return {e["id"] for e in events.snapshot("task-started")}


@pytest.mark.zt_timeout(90)
def test_redis_down_workers_keep_processing_and_results_arrive(cluster, own_redis):
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    events = cluster.events()
    events.sync(client)
    # credit = concurrency x prefetch = 2: 40 tasks need intake to go on
    w = cluster.start_worker(queues=[QUEUE], concurrency=2, prefetch=1)
    warm = client.submit_ok("builtin.add", args=[1, 1], queue=QUEUE)
    assert cluster.wait_result(warm)["result"] == 2

    own_redis.kill()
    n = 40
    ids = [client.submit_ok("builtin.add", args=[i, 1000], queue=QUEUE) for i in range(n)]
    wait_until(lambda: set(ids) <= started_ids(events), 30, interval=0.05,
               message=f"all {n} tasks to start while Redis is down")
    wait_until(lambda: worker_log(w).count("task succeeded: builtin.add") >= n + 1, 15,
               message="the worker to finish every task while Redis is down")
    stats = stats_of(cluster, client, w)
    assert stats["results_buffered"] == n, stats
    assert stats["results_lost"] == 0, stats
    # acks-late: no DONE before Redis has the result
    assert not {e["id"] for e in events.snapshot("task-succeeded")} & set(ids)

    own_redis.start()
    metas = cluster.wait_results(ids, timeout=20)
    for i, tid in enumerate(ids):
        assert metas[tid]["status"] == "SUCCESS" and metas[tid]["result"] == i + 1000, metas[tid]
    events.wait_count("task-succeeded", n, timeout=10, ids=ids)
    wait_until(lambda: stats_of(cluster, client, w)["results_buffered"] == 0, 10,
               message="the buffer to drain")

    log = worker_log(w)
    assert len(re.findall(r"WARN .*redis at .*results will be written again", log)) == 1, log
    assert len(re.findall(r"redis at \S+ is back: \d+ held states written", log)) == 1, log
    assert re.search(rf"is back: {n} held states written", log), log
    # and it goes on serving
    tid = client.submit_ok("builtin.add", args=[20, 22], queue=QUEUE)
    assert cluster.wait_result(tid)["result"] == 42


@pytest.mark.zt_timeout(90)
def test_result_buffer_bound_loses_oldest_logs_and_counts(cluster, own_redis):
    cluster.start_broker(heartbeat_ms=200, liveness=15)  # no redelivery under CI load
    client = cluster.client()
    events = cluster.events()
    events.sync(client)
    bound = 5
    w = cluster.start_worker(queues=[QUEUE], concurrency=1, prefetch=2,
                             extra=["--result-buffer-max", str(bound)])
    warm = client.submit_ok("builtin.noop", queue=QUEUE)
    assert cluster.wait_result(warm)["status"] == "SUCCESS"

    own_redis.kill()
    n = 20
    ids = [client.submit_ok("builtin.add", args=[i, 1], queue=QUEUE) for i in range(n)]
    wait_until(lambda: worker_log(w).count("task succeeded: builtin.add") >= n, 30,
               message=f"the worker to finish all {n} tasks while Redis is down")
    lost_lines = re.findall(r"WARN .*result of builtin\.add\[([0-9a-f-]+)\] lost", worker_log(w))
    # one task at a time, each writes one SUCCESS: all but the newest `bound` are lost
    assert len(lost_lines) == n - bound, lost_lines
    assert lost_lines == ids[:n - bound]
    stats = stats_of(cluster, client, w)
    assert stats["results_lost"] == n - bound and stats["results_buffered"] == bound, stats
    assert stats["result_buffer_max"] == bound
    # a lost result's task still finished: its DONE went out at once
    events.wait_count("task-succeeded", n - bound, timeout=10, ids=lost_lines)

    own_redis.start()
    kept = [t for t in ids if t not in set(lost_lines)]
    metas = cluster.wait_results(kept, timeout=20)
    for tid in kept:
        assert metas[tid]["result"] == ids.index(tid) + 1
    events.wait_count("task-succeeded", n, timeout=10, ids=ids)
    for tid in lost_lines:
        assert cluster.meta(tid) is None, f"{tid} was reported lost but is in Redis"
    log = worker_log(w)
    assert re.search(rf"is back: {bound} held states written; {n - bound} results were lost",
                     log), log

    # still serving, and the count stays
    tid = client.submit_ok("builtin.add", args=[2, 3], queue=QUEUE)
    assert cluster.wait_result(tid)["result"] == 5
    assert stats_of(cluster, client, w)["results_lost"] == n - bound


@pytest.mark.zt_timeout(90)
def test_redis_restarted_under_load_loses_nothing(cluster, tmp_path):
    """Redis (persistent: appendfsync always) SIGKILLed and restarted while
    tasks flow: the worker's connection dies under it, writes in flight are
    written again; every result is there at the end."""
    server = RedisServer(tmp_path / "aof-redis", persistent=True)
    try:
        cluster.use_redis(server)
        cluster.start_broker(heartbeat_ms=200, liveness=3)
        client = cluster.client()
        w = cluster.start_worker(queues=[QUEUE], concurrency=2)
        n = 3000
        msgs = [ztp.task_message("builtin.add", args=[i, 7], queue=QUEUE) for i in range(n)]
        ids = [m["id"] for m in msgs]
        for m in msgs:  # pipelined: the worker is busy when Redis dies
            client.send(ztp.SUBMIT, m)
        wait_until(lambda: worker_log(w).count("task succeeded") >= 100, 20,
                   message="the first tasks to finish")
        server.kill()
        done_at_kill = worker_log(w).count("task succeeded")
        server.start()
        replies = [client.recv() for _ in msgs]
        assert all(r.accepted for r in replies)
        assert done_at_kill < n, "every task finished before Redis died: nothing was tested"
        metas = cluster.wait_results(ids, timeout=60)
        assert [metas[t]["result"] for t in ids] == [i + 7 for i in range(n)]
        assert stats_of(cluster, client, w)["results_lost"] == 0
        log = worker_log(w)
        assert len(re.findall(r"WARN .*redis at .*results will be written again", log)) == 1, log
    finally:
        server.stop()


@pytest.mark.zt_timeout(60)
def test_redis_refusing_writes_holds_results(cluster, own_redis):
    """A Redis that answers but refuses writes (here NOREPLICAS; LOADING
    after a restart, MISCONF, OOM and READONLY look the same to a writer):
    the refused results are not counted as written, their DONEs wait, and
    they are written once Redis accepts writes again."""
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    events = cluster.events()
    events.sync(client)
    w = cluster.start_worker(queues=[QUEUE], concurrency=2)
    warm = client.submit_ok("builtin.noop", queue=QUEUE)
    assert cluster.wait_result(warm)["status"] == "SUCCESS"

    own_redis.client.config_set("min-replicas-to-write", 1)
    n = 10
    ids = [client.submit_ok("builtin.add", args=[i, 5], queue=QUEUE) for i in range(n)]
    wait_until(lambda: worker_log(w).count("task succeeded: builtin.add") >= n, 15,
               message="the worker to finish every task")
    wait_until(lambda: "write refused: NOREPLICAS" in worker_log(w), 10,
               message="the worker to see the refusal")
    assert stats_of(cluster, client, w)["results_buffered"] == n
    assert all(cluster.meta(t) is None for t in ids)
    assert not {e["id"] for e in events.snapshot("task-succeeded")} & set(ids)

    own_redis.client.config_set("min-replicas-to-write", 0)
    metas = cluster.wait_results(ids, timeout=20)
    assert [metas[t]["result"] for t in ids] == [i + 5 for i in range(n)]
    events.wait_count("task-succeeded", n, timeout=10, ids=ids)
    log = worker_log(w)
    assert len(re.findall(r"WARN .*redis at .*results will be written again", log)) == 1, log
    assert len(re.findall(r"redis at \S+ is back", log)) == 1, log
