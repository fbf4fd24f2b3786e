"""Issue 4, broker side: the journal and crash recovery (docs/DURABILITY.md),
and the queue limits.

- kill -9 the broker holding queued (with priorities), scheduled, revoked
  and in-flight tasks; restart it on the same data directory: every task
  completes, in priority order, scheduled ones not early, finished ones
  never again, in-flight ones redelivered;
- under each --fsync policy, a task is in the journal once ACCEPTED;
- a torn tail is cut (one log line), a corrupt record in the middle is
  reported with its offset and the rest recovered;
- compaction writes a snapshot and drops old files while serving;
- when the journal cannot be written (a full disk, injected), SUBMITs are
  not acknowledged, the broker says so loudly and keeps serving, and the
  held ACCEPTED goes out once the disk works again;
- --max-queue-length / --max-queued-bytes answer REJECTED queue-full.
"""

import re
import struct
import time
from pathlib import Path

import pytest

import ztp
from conftest import wait_until
from ztp import task_message

HEADER = 24  # file header bytes
REC_HEADER = 12  # magic u16, type u8, 0, length u32, crc u32
ADD = 1


def journal_files(data_dir):
    return sorted(Path(data_dir).glob("journal-*.ztj"))


def records(path):
    """(offset, type, payload) of each record of a journal file, read the
    simple way (the format is in docs/DURABILITY.md): stops at the first
    frame that does not fit."""
    data = Path(path).read_bytes()
    out = []
    pos = HEADER
    while pos + REC_HEADER <= len(data):
        magic, rtype, _zero, length = struct.unpack_from("<HBBI", data, pos)
        if magic != 0x4AD7 or pos + REC_HEADER + length > len(data):
            break
        out.append((pos, rtype, data[pos + REC_HEADER:pos + REC_HEADER + length]))
        pos += REC_HEADER + length
    return out


def add_record_id(payload):
    id_len = payload[3]
    return payload[32:32 + id_len].decode()


def restart(cluster, old, **kw):
    """SIGKILL the broker (a crash), start a new one on the same endpoints
    and data directory."""
    old.proc.kill()
    return cluster.start_broker(heartbeat_ms=200, liveness=3, port=old.port,
                                events_port=old.events_port, **kw)


def log_of(broker):
    return Path(broker.proc.logfile).read_text(errors="replace")


def queue_entry(client, name):
    for q in client.control("queues"):
        if q["name"] == name:
            return q
    return None


@pytest.mark.zt_timeout(120)
def test_kill9_recovers_queued_scheduled_revoked_and_in_flight(cluster):
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    runner = cluster.start_worker(queues=["jrun"], concurrency=1, prefetch=1)
    # finished before the crash: must never run again
    done_id = client.submit_ok("builtin.add", args=[1, 1], queue="jrun")
    assert cluster.wait_result(done_id)["status"] == "SUCCESS"
    # in flight at the crash
    events = cluster.events()
    events.sync(client)
    running = client.submit_ok("builtin.sleep", args=[1.5], queue="jrun")
    events.wait_for(lambda e: e["type"] == "task-started" and e.get("id") == running,
                    timeout=10, what="the long task to start")
    # queued, with priorities, on a queue nobody serves yet
    prios = [0, 5, 9, 5, 0, 9, 3, 7, 0, 5]
    queued = [client.submit_ok("builtin.add", args=[i, 1], queue="jprio", priority=p)
              for i, p in enumerate(prios)]
    expected_order = [tid for _, _, tid in
                      sorted(((-p, i, tid) for i, (p, tid) in enumerate(zip(prios, queued))))]
    # scheduled
    t_sched = time.time()
    scheduled = [client.submit_ok("builtin.add", args=[100, i], queue="jprio", countdown=4)
                 for i in range(3)]
    # revoked while queued, and an id revoked before it exists
    victim = client.submit_ok("builtin.add", args=[0, 0], queue="jprio", priority=9)
    assert client.control("revoke", id=victim)["state"] == "queued"
    future = "revoked-before-it-existed-1"
    assert client.control("revoke", id=future)["state"] == "unknown"
    before = queue_entry(client, "jprio")
    assert before["ready"] == 10 and before["scheduled"] == 3

    b2 = restart(cluster, b1)
    client = cluster.client(broker=b2)
    after = queue_entry(client, "jprio")
    assert after["by_priority"] == before["by_priority"], (before, after)
    assert after["scheduled"] == 3 and after["tombstones"] == 1
    sched = {s["id"]: s for s in client.control("scheduled")}
    assert set(sched) == set(scheduled)
    for s in sched.values():
        assert abs(s["eta"] - (t_sched + 4)) < 2, s
    stats = client.control("stats")
    assert stats["redelivered"] >= 1  # the in-flight task
    log = log_of(b2)
    assert "recovered" in log and "requeued as redelivered" in log

    # the id revoked before it existed is still revoked after the restart
    assert client.submit_ok("builtin.add", args=[2, 2], queue="jrun", id=future) == future

    events = cluster.events(broker=b2)
    events.sync(client)
    cluster.start_worker(queues=["jprio"], concurrency=1, prefetch=1)
    metas = cluster.wait_results(queued + scheduled + [victim, running, future], timeout=40)
    for tid in queued:
        assert metas[tid]["status"] == "SUCCESS"
    for i, tid in enumerate(scheduled):
        assert metas[tid]["result"] == 100 + i
    assert metas[victim]["status"] == "REVOKED"
    assert metas[future]["status"] == "REVOKED"
    assert metas[running]["status"] == "SUCCESS"
    # events travel apart from results (and in bursts): wait for the last ones
    events.wait_count("task-succeeded", len(queued) + len(scheduled), timeout=10,
                      ids=queued + scheduled)
    # ready tasks ran in priority order (9 first, FIFO within a priority)
    started = [e["id"] for e in events.snapshot("task-started") if e.get("id") in set(queued)]
    assert started == expected_order
    # scheduled ones were not released early by the restart
    for tid in scheduled:
        ev = [e for e in events.snapshot("task-started") if e.get("id") == tid]
        assert ev and ev[0]["timestamp"] >= t_sched + 4 - 0.05
    # the finished task is not run again
    assert not events.snapshot("task-started", done_id)
    assert runner.proc.alive()
    # nothing left behind (events.sync() leaves probe tasks on a queue of its own)
    def drained():
        qs = [q for q in client.control("queues") if q["name"] in ("jprio", "jrun")]
        return all(q["ready"] + q["scheduled"] + q["in_flight"] + q["tombstones"] == 0
                   for q in qs)
    wait_until(drained, 10, message="jprio and jrun to hold no task")


@pytest.mark.parametrize("policy", ["always", "batch", "off"])
def test_accepted_means_in_the_journal(cluster, policy):
    """Each SUBMIT is answered only once its record is durable under the
    policy; a crash right after the last ACCEPTED loses none of them."""
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3, extra=["--fsync", policy])
    client = cluster.client()
    msgs = [task_message("builtin.noop", queue="jdur", priority=i % 10) for i in range(300)]
    replies = client.submit_many(msgs)
    assert all(r.accepted for r in replies)
    assert [r.body["id"] for r in replies] == [m["id"] for m in msgs]
    b2 = restart(cluster, b1, extra=["--fsync", policy])
    client = cluster.client(broker=b2)
    q = queue_entry(client, "jdur")
    assert q["ready"] == 300, q
    assert client.control("stats")["tasks"] == 300
    assert f"fsync {policy}" in log_of(b2)


def test_replies_keep_submit_order_with_rejections(cluster, broker, client):
    msgs = []
    for i in range(60):
        if i % 7 == 3:
            msgs.append(task_message("builtin.noop", queue="bad queue name!"))
        else:
            msgs.append(task_message("builtin.noop", queue="jorder"))
    replies = client.submit_many(msgs)
    assert [r.body["id"] for r in replies] == [m["id"] for m in msgs]
    for i, r in enumerate(replies):
        assert r.rejected == (i % 7 == 3), (i, r)


def test_torn_tail_is_cut_with_one_log_line(cluster):
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    ids = [client.submit_ok("builtin.noop", queue="jtorn") for _ in range(20)]
    b1.proc.stop()
    (last,) = journal_files(cluster.dir / "broker-data")[-1:]
    good = last.stat().st_size
    # half a record: what a power cut in the middle of a write leaves
    frame = bytes(records(last)[-1][2])
    with open(last, "ab") as f:
        f.write(b"\xd7\x4a\x01\x00" + struct.pack("<I", 500) + b"\x00" * 4 + frame[:30])
    b2 = cluster.start_broker(heartbeat_ms=200, liveness=3, port=b1.port,
                              events_port=b1.events_port)
    client = cluster.client(broker=b2)
    assert queue_entry(client, "jtorn")["ready"] == 20
    assert last.stat().st_size == good
    lines = [ln for ln in log_of(b2).splitlines() if "torn tail" in ln]
    assert len(lines) == 1 and f"cut at offset {good}" in lines[0], lines
    cluster.start_worker(queues=["jtorn"], concurrency=2)
    metas = cluster.wait_results(ids, timeout=20)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}


def test_corrupt_middle_record_is_reported_and_the_rest_recovered(cluster):
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    ids = [client.submit_ok("builtin.noop", queue="jcorrupt") for _ in range(30)]
    b1.proc.stop()
    (last,) = journal_files(cluster.dir / "broker-data")[-1:]
    adds = [(off, p) for off, t, p in records(last) if t == ADD]
    assert len(adds) == 30
    off, payload = adds[12]
    lost = add_record_id(payload)
    data = bytearray(last.read_bytes())
    data[off + REC_HEADER + 40] ^= 0xFF  # one byte of its payload: CRC mismatch
    last.write_bytes(bytes(data))
    b2 = cluster.start_broker(heartbeat_ms=200, liveness=3, port=b1.port,
                              events_port=b1.events_port)
    client = cluster.client(broker=b2)
    assert queue_entry(client, "jcorrupt")["ready"] == 29
    lines = [ln for ln in log_of(b2).splitlines() if "corrupt record" in ln]
    assert len(lines) == 1 and f"offset {off} " in lines[0], lines
    cluster.start_worker(queues=["jcorrupt"], concurrency=2)
    rest = [i for i in ids if i != lost]
    metas = cluster.wait_results(rest, timeout=20)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}
    # the damage triggers a compaction, after which the files are clean
    wait_until(lambda: re.search(r"compaction: snapshot-\w+ done", log_of(b2)), 20,
               message="the compaction that drops the damaged file")


@pytest.mark.zt_timeout(120)
def test_compaction_while_serving_then_crash(cluster):
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3,
                              extra=["--journal-compact-bytes", "30000"])
    client = cluster.client()
    data_dir = cluster.dir / "broker-data"
    pad = "x" * 200
    kept = []
    for round_ in range(6):
        msgs = [task_message("builtin.echo", args=[pad], queue="jcomp") for _ in range(40)]
        assert all(r.accepted for r in client.submit_many(msgs))
        kept += [m["id"] for m in msgs]
    wait_until(lambda: list(data_dir.glob("snapshot-*.zts")), 20,
               message="a snapshot to be written")
    wait_until(lambda: re.search(r"compaction: snapshot-\w+ done", log_of(b1)), 20,
               message="the compaction to finish")
    log = log_of(b1)
    assert re.search(r"loop paused [0-9.]+ ms", log)
    # old generations were removed; the newest snapshot and journal(s) remain
    snaps = sorted(data_dir.glob("snapshot-*.zts"))
    gen = int(snaps[-1].name[9:25], 16)
    assert all(int(p.name[8:24], 16) >= gen for p in journal_files(data_dir))
    # served throughout: more submits, a crash, everything still there
    more = [client.submit_ok("builtin.noop", queue="jcomp") for _ in range(10)]
    b2 = restart(cluster, b1, extra=["--journal-compact-bytes", "30000"])
    client = cluster.client(broker=b2)
    assert queue_entry(client, "jcomp")["ready"] == len(kept) + len(more)
    cluster.start_worker(queues=["jcomp"], concurrency=2)
    metas = cluster.wait_results(kept + more, timeout=40)
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}


def test_queue_full_rejections(cluster):
    cluster.start_broker(heartbeat_ms=200, liveness=3,
                         extra=["--max-queue-length", "5", "--max-queued-bytes", "20000"])
    client = cluster.client()
    ok = [client.submit_ok("builtin.noop", queue="jfull") for _ in range(5)]
    msg = task_message("builtin.noop", queue="jfull")
    reply = client.submit(msg)
    assert reply.rejected and reply.code == "queue-full", reply
    assert reply.body["id"] == msg["id"] and "jfull" in reply.body["reason"]
    # scheduled tasks count towards the queue's length too
    assert client.submit(task_message("builtin.noop", queue="jfull", countdown=60)).rejected
    # other queues are not affected by that queue's limit...
    other = client.submit_ok("builtin.noop", queue="jother")
    # ...but the byte limit covers everything held
    big = task_message("builtin.echo", args=["y" * 30000], queue="jother")
    reply = client.submit(big)
    assert reply.rejected and reply.code == "queue-full" and "bytes" in reply.body["reason"]
    assert client.control("stats")["rejected"] >= 3
    # once a worker drains the queue, it takes tasks again
    cluster.start_worker(queues=["jfull", "jother"], concurrency=2)
    cluster.wait_results(ok + [other], timeout=20)
    wait_until(lambda: queue_entry(client, "jfull")["ready"] == 0, 10, message="drained")
    assert client.submit(task_message("builtin.noop", queue="jfull")).accepted


def test_second_broker_on_same_data_dir_is_refused(cluster, broker):
    proc = cluster.start_broker(wait=False).proc
    assert proc.wait(10) == 1
    proc.returncode = proc.popen.returncode  # expected failure: not a problem of the test
    proc.deliberately_killed = True
    out = Path(proc.logfile).read_text(errors="replace")
    assert "in use by another broker" in out


def test_disk_failure_holds_accepted_and_keeps_serving(cluster, monkeypatch):
    fault = cluster.dir / "disk-full"
    monkeypatch.setenv("ZT_JOURNAL_FAULT_FILE", str(fault))
    b1 = cluster.start_broker(heartbeat_ms=200, liveness=3)
    client = cluster.client()
    client.submit_ok("builtin.noop", queue="jdisk")
    fault.touch()
    msg = task_message("builtin.noop", queue="jdisk")
    client.send(ztp.SUBMIT, msg)
    with pytest.raises(ztp.Timeout):
        client.recv(1.0)  # not durable: no ACCEPTED
    assert cluster.client().control("ping")["pong"] is True  # still serving
    wait_until(lambda: "JOURNAL WRITE FAILED" in log_of(b1), 5, message="the loud log line")
    assert client.control("stats")["journal_write_errors"] >= 1
    fault.unlink()
    reply = client.recv(5)
    assert reply.accepted and reply.body["id"] == msg["id"], reply
    b2 = restart(cluster, b1)
    client = cluster.client(broker=b2)
    assert queue_entry(client, "jdisk")["ready"] == 2
