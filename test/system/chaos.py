#!/usr/bin/python3
"""chaos: runs a whole cluster under faults and checks that no accepted task
is lost (issue 4, "Chaos suite"; docs/DURABILITY.md).

It starts a redis-server (append-only file, fsync before every reply), a
zmqbroker (--data-dir, default --fsync batch) and three zmqworkers on free
loopback ports in a temporary folder, then submits tasks of mixed queues,
priorities and kinds (mostly builtin.noop/add, some builtin.sleep, some
builtin.flaky that succeed after retries, some designed to fail) at an even
pace, while a second thread

- SIGKILLs a random worker (with its pool) every few seconds and restarts it,
- SIGKILLs the broker and restarts it on the same ports and data directory
  (journal replay) --broker-kills times,
- SIGKILLs Redis and restarts it on the same port --redis-restarts times.

The client resubmits, with the SAME task id, every SUBMIT whose reply did not
come within a bound (the broker died with it): REJECTED duplicate-id means
the broker holds that id already, durably (that reply waits for the journal
like ACCEPTED), so it counts as accepted; a broker that finished and forgot
the task accepts it anew, and the task runs again (a rerun).

At the end every accepted id must have its expected final state in Redis
(SUCCESS with the right value, or FAILURE for the tasks designed to fail),
the broker and every worker must still serve (a task round-trips on each
queue, every worker answers a ping), no process may have died on its own,
and every process must exit cleanly (status 0, no sanitizer report).
Reruns (a task attempt started more than once: the workers' "task started:
NAME[ID] attempt N" log lines) are counted, not failures: delivery is at
least once. The last line printed is

    accepted / finished / lost / rerun: A / F / L / R

Standalone (long local soak):
    /usr/bin/python3 test/system/chaos.py --tasks 100000 --minutes 30
test/system/test_chaos.py runs it bounded for CI. Binaries come from
--bin-dir, else $ZT_BIN_DIR, else <repo>/build/bin.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis as redis_py
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ztp  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QUEUES = ("chaos-a", "chaos-b", "chaos-c")
# each worker serves two queues, each queue has two workers: one kill never
# leaves a queue without a worker for long
WORKER_QUEUES = (("chaos-a", "chaos-b"), ("chaos-b", "chaos-c"), ("chaos-c", "chaos-a"))
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                       r"SUMMARY: UndefinedBehaviorSanitizer")
STARTED_LINE = re.compile(r"task started: [^\[]*\[([^\]]+)\] attempt (\d+)")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_asan_build(bin_dir):
    """True when the programs were built with -DZT_SANITIZE=ON."""
    try:
        return b"__asan_init" in (Path(bin_dir) / "zmqbroker").read_bytes()
    except OSError:
        return False


class Proc:
    """One incarnation of a program, in its own process group (a worker's
    pool dies with it), output to <dir>/<label>.out."""

    def __init__(self, label, argv, workdir, env=None):
        self.label = label
        self.argv = argv
        self.outfile = Path(workdir) / f"{label}.out"
        self.killed = False  # by us: not a crash
        self._out = open(self.outfile, "ab")
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=subprocess.STDOUT, cwd=workdir,
                                      env=env or dict(os.environ), start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def kill(self):
        """SIGKILL the group: a crash, an OOM kill, a pulled plug."""
        self.killed = True
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._out.close()

    def stop(self, timeout):
        """SIGTERM, wait up to timeout, then SIGKILL the group. Returns a
        problem string, or None when it exited 0 in time."""
        problem = None
        try:
            self.popen.send_signal(signal.SIGTERM)  # no-op once it has exited
            rc = self.popen.wait(timeout)
            if rc != 0 and not self.killed:
                problem = f"{self.label} exited with status {rc} after SIGTERM"
        except subprocess.TimeoutExpired:
            problem = f"{self.label} (pid {self.pid}) did not exit within {timeout} s"
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # orphaned children, if any
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if not self._out.closed:
            self._out.close()
        return problem

    def sanitizer_report(self):
        try:
            text = self.outfile.read_text(errors="replace")
        except OSError:
            return None
        m = SANITIZER.search(text)
        return text[max(0, m.start() - 200):m.start() + 3000] if m else None


class Task:
    __slots__ = ("id", "msg", "kind", "expect_status", "expect_result", "sent_at", "sends",
                 "accepted", "answer")

    def __init__(self, tid, msg, kind, expect_status, expect_result):
        self.id = tid
        self.msg = msg
        self.kind = kind
        self.expect_status = expect_status
        self.expect_result = expect_result
        self.sent_at = None
        self.sends = 0
        self.accepted = False
        self.answer = None  # "accepted" | "duplicate-id"


def make_tasks(n, rng):
    """The task mix: ~70% add, ~15% noop, 5% short sleep, 5% flaky that
    succeeds after retries, 5% designed to fail (fail, or flaky beyond its
    retries). Random queue and priority each."""
    tasks = []
    for i in range(n):
        tid = f"chaos-{i:07d}-{rng.randrange(16**8):08x}"
        queue = rng.choice(QUEUES)
        priority = rng.randrange(10)
        r = rng.random()
        fields = {}
        if r < 0.70:
            x, y = rng.randrange(1000), rng.randrange(1000)
            name, args, status, result = "builtin.add", [x, y], "SUCCESS", x + y
        elif r < 0.85:
            name, args, status, result = "builtin.noop", [], "SUCCESS", None
        elif r < 0.90:
            s = rng.choice((0.02, 0.05, 0.1, 0.2))
            name, args, status, result = "builtin.sleep", [s], "SUCCESS", s
        elif r < 0.95:
            k = rng.choice((1, 2))
            name, args, status, result = "builtin.flaky", [k], "SUCCESS", k + 1
            fields = {"max_retries": 3, "retry_delay": 0.05}
        elif r < 0.975:
            name, args, status, result = "builtin.fail", ["chaos: designed to fail"], \
                "FAILURE", None
            fields = {"max_retries": 0}
        else:
            name, args, status, result = "builtin.flaky", [3], "FAILURE", None
            fields = {"max_retries": 1, "retry_delay": 0.05}
        msg = ztp.task_message(name, args=args, id=tid, queue=queue, priority=priority,
                               **fields)
        tasks.append(Task(tid, msg, name, status, result))
    return tasks


class ChaosRun:
    """One run. run() returns self with the counts filled in; problems lists
    everything that makes the run a failure besides lost tasks."""

    def __init__(self, bin_dir, workdir, tasks=10000, submit_seconds=40.0, worker_kill_every=3.0,
                 broker_kills=2, redis_restarts=1, concurrency=2, seed=None, settle_seconds=120.0,
                 resubmit_after=2.0, stop_timeout=15.0, out=sys.stdout):
        self.bin_dir = Path(bin_dir).resolve()
        self.dir = Path(workdir)
        self.n_tasks = tasks
        self.submit_seconds = submit_seconds
        self.worker_kill_every = worker_kill_every
        self.n_broker_kills = broker_kills
        self.n_redis_restarts = redis_restarts
        self.concurrency = concurrency
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.settle_seconds = settle_seconds
        self.resubmit_after = resubmit_after
        self.stop_timeout = stop_timeout
        self.out = out
        self.rng = random.Random(self.seed)
        self.t0 = time.monotonic()
        self.lock = threading.Lock()  # guards the process handles
        self.problems = []
        self.all_procs = []
        self.broker = None
        self.redis = None
        self.workers = [None, None, None]
        self.worker_names = [f"chaos{i + 1}@zt" for i in range(3)]
        self.stop_chaos = threading.Event()
        # set by the chaos thread before it kills the broker, cleared by the
        # client once it has sent a burst of SUBMITs: some are then in the
        # dying broker's socket buffers, and must be resubmitted
        self.burst = threading.Event()
        self.burst_sent = threading.Event()
        self.counts = {"worker_kills": 0, "broker_kills": 0, "redis_restarts": 0,
                       "resubmits": 0, "duplicate_id": 0, "crash_restarts": 0}
        # results
        self.accepted = self.finished = self.lost = self.rerun = 0
        self.wrong = []
        self.buffer_lost = 0  # results the workers' buffers dropped (their stats)
        self.rerun_resubmitted = 0
        self.not_accepted = []
        self.lost_ids = []

    # -- output ------------------------------------------------------------------

    def say(self, text):
        print(f"[{time.monotonic() - self.t0:7.2f}s] {text}", file=self.out, flush=True)

    # -- processes ------------------------------------------------------------------

    def binary(self, name):
        path = self.bin_dir / name
        if not path.exists():
            raise RuntimeError(f"{path} does not exist (build first, or pass --bin-dir)")
        return str(path)

    def start_redis(self):
        argv = [shutil.which("redis-server") or "/usr/bin/redis-server",
                "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--dir", str(self.dir / "redis"), "--logfile", str(self.dir / "redis.log"),
                "--daemonize", "no"]
        (self.dir / "redis").mkdir(exist_ok=True)
        p = Proc(f"redis{self.counts['redis_restarts'] + 1}", argv, self.dir)
        self.all_procs.append(p)
        client = redis_py.Redis(host="127.0.0.1", port=self.redis_port, db=1, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            if not p.alive():
                raise RuntimeError(f"redis-server exited; see {p.outfile}")
            try:
                if client.ping():
                    break
            except redis_py.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 20 s")
            time.sleep(0.02)
        client.close()
        self.redis = p

    def start_broker(self):
        n = self.counts["broker_kills"] + 1
        argv = [self.binary("zmqbroker"),
                "--bind", f"tcp://127.0.0.1:{self.broker_port}",
                "--events-bind", f"tcp://127.0.0.1:{self.events_port}",
                "--data-dir", str(self.dir / "broker-data"),
                "--heartbeat-ms", "250", "--liveness", "4",
                "--loglevel", "info", "--logfile", str(self.dir / f"broker{n}.log")]
        p = Proc(f"broker{n}", argv, self.dir)
        self.all_procs.append(p)
        if not ztp.wait_ping(self.broker_endpoint, timeout=30, is_alive=p.alive):
            raise RuntimeError(f"zmqbroker did not answer ping (alive={p.alive()}); "
                               f"see {self.dir}/broker{n}.log")
        self.broker = p

    def start_worker(self, i):
        name = self.worker_names[i]
        argv = [self.binary("zmqworker"), "-b", self.broker_endpoint,
                "--result-backend", f"redis://127.0.0.1:{self.redis_port}/1",
                "-Q", ",".join(WORKER_QUEUES[i]), "-c", str(self.concurrency),
                "-n", name, "--loglevel", "info",
                "--logfile", str(self.dir / f"worker{i + 1}.log")]
        prefix = f"worker{i + 1}."
        label = prefix + str(sum(p.label.startswith(prefix) for p in self.all_procs) + 1)
        p = Proc(label, argv, self.dir)
        self.all_procs.append(p)
        self.workers[i] = p

    # -- chaos thread ------------------------------------------------------------------

    def schedule(self):
        """(time, action) pairs over the submission period."""
        events = []
        t = self.worker_kill_every
        while t < self.submit_seconds:
            events.append((t + self.rng.uniform(-0.5, 0.5), "worker"))
            t += self.worker_kill_every
        span = self.submit_seconds
        for k in range(self.n_broker_kills):
            events.append(((k + 0.5) / self.n_broker_kills * span * 0.9 + 1, "broker"))
        for k in range(self.n_redis_restarts):
            events.append(((k + 0.6) / self.n_redis_restarts * span * 0.8 + 1, "redis"))
        return sorted(events)

    def chaos_loop(self):
        try:
            events = self.schedule()
            while not self.stop_chaos.is_set():
                self.watch_crashes()
                if not events:
                    self.stop_chaos.wait(0.1)
                    continue
                at, what = events[0]
                if time.monotonic() - self.t_submit < at:
                    self.stop_chaos.wait(0.05)
                    continue
                events.pop(0)
                if what == "worker":
                    i = self.rng.randrange(3)
                    with self.lock:
                        w = self.workers[i]
                        self.say(f"SIGKILL {self.worker_names[i]} (pid {w.pid})")
                        w.kill()
                        self.counts["worker_kills"] += 1
                    self.stop_chaos.wait(self.rng.uniform(0.2, 1.0))
                    with self.lock:
                        self.start_worker(i)
                elif what == "broker":
                    self.burst_sent.clear()
                    self.burst.set()
                    self.burst_sent.wait(2)
                    with self.lock:
                        self.say(f"SIGKILL zmqbroker (pid {self.broker.pid})")
                        self.broker.kill()
                        self.counts["broker_kills"] += 1
                    self.stop_chaos.wait(self.rng.uniform(0.1, 0.5))
                    with self.lock:
                        self.start_broker()
                        self.say(f"zmqbroker restarted (pid {self.broker.pid}), journal replayed")
                elif what == "redis":
                    with self.lock:
                        self.say(f"SIGKILL redis-server (pid {self.redis.pid})")
                        self.redis.kill()
                        self.counts["redis_restarts"] += 1
                    self.stop_chaos.wait(self.rng.uniform(0.5, 1.5))
                    with self.lock:
                        self.start_redis()
                        self.say(f"redis-server restarted (pid {self.redis.pid})")
            self.watch_crashes()
        except Exception as exc:  # noqa: BLE001 - reported as a problem of the run
            self.problems.append(f"chaos thread failed: {exc!r}")
            self.stop_chaos.set()

    def watch_crashes(self):
        """A process that died without us killing it is a crash: recorded,
        and (for a worker) restarted so the run goes on."""
        with self.lock:
            for i, w in enumerate(self.workers):
                if w is not None and not w.alive() and not w.killed:
                    self.problems.append(f"{w.label} ({self.worker_names[i]}) died on its own "
                                         f"with status {w.popen.returncode}; see {w.outfile}")
                    w.killed = True  # reported once
                    self.counts["crash_restarts"] += 1
                    self.start_worker(i)
            for p in (self.broker, self.redis):
                if p is not None and not p.alive() and not p.killed:
                    self.problems.append(f"{p.label} died on its own with status "
                                         f"{p.popen.returncode}; see {p.outfile}")
                    p.killed = True
                    if p is self.broker:
                        self.start_broker()
                    else:
                        self.start_redis()

    # -- the client ------------------------------------------------------------------

    def submit_all(self, tasks):
        """Submits every task at an even pace, resubmitting (same id) those
        whose reply does not come within resubmit_after seconds, until each
        is accepted or the settle bound passes."""
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.connect(self.broker_endpoint)
        by_id = {t.id: t for t in tasks}
        outstanding = {}  # id -> Task, in send order (dicts keep it)
        nxt = 0
        n = len(tasks)
        deadline = self.t_submit + self.submit_seconds + self.settle_seconds
        last_note = 0.0
        try:
            while nxt < n or outstanding:
                now = time.monotonic()
                if now > deadline:
                    break
                due = n if self.submit_seconds <= 0 else \
                    min(n, int((now - self.t_submit) / self.submit_seconds * n) + 1)
                burst_at = None
                if self.burst.is_set():
                    due = min(n, nxt + 1000)  # ahead of the pace, see self.burst
                    burst_at = nxt + 20
                    self.burst.clear()
                while nxt < due and len(outstanding) < 3000:
                    if nxt == burst_at:
                        self.burst_sent.set()  # the kill lands while we send
                    t = tasks[nxt]
                    nxt += 1
                    sock.send_multipart([ztp.SIGNATURE, bytes([ztp.SUBMIT]), ztp.pack(t.msg)])
                    t.sent_at = now
                    t.sends = 1
                    outstanding[t.id] = t
                if burst_at is not None:
                    self.burst_sent.set()
                # resubmit the ones whose reply is overdue, oldest first
                for t in list(outstanding.values()):
                    if now - t.sent_at < self.resubmit_after:
                        break
                    del outstanding[t.id]
                    sock.send_multipart([ztp.SIGNATURE, bytes([ztp.SUBMIT]), ztp.pack(t.msg)])
                    t.sent_at = now
                    t.sends += 1
                    outstanding[t.id] = t
                    self.counts["resubmits"] += 1
                if sock.poll(10):
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self.on_reply(frames, by_id, outstanding)
                if now - last_note > 5:
                    last_note = now
                    self.say(f"submitted {nxt}/{n}, awaiting {len(outstanding)} replies, "
                             f"{self.counts['resubmits']} resubmits")
        finally:
            sock.close(0)
            ctx.term()
        self.not_accepted = [t.id for t in tasks if not t.accepted]

    def on_reply(self, frames, by_id, outstanding):
        try:
            reply = ztp.Reply(frames)
        except ztp.ProtocolError as exc:
            self.problems.append(f"unreadable broker reply: {exc}")
            return
        tid = reply.body.get("id") if isinstance(reply.body, dict) else None
        t = by_id.get(tid)
        if t is None:
            self.problems.append(f"broker reply for no task of ours: {reply!r}")
            return
        if reply.accepted:
            answer = "accepted"
        elif reply.rejected and reply.code == "duplicate-id":
            answer = "duplicate-id"  # held already, durably: as good as ACCEPTED
            self.counts["duplicate_id"] += 1
        else:
            self.problems.append(f"task {tid} not accepted: {reply!r}")
            return
        if not t.accepted:
            t.accepted = True
            t.answer = answer
        outstanding.pop(tid, None)

    # -- the end ------------------------------------------------------------------

    def wait_results(self, tasks, timeout):
        """Polls Redis until every accepted task has a final state or timeout
        passes. Returns {id: meta} for those that have one."""
        client = redis_py.Redis(host="127.0.0.1", port=self.redis_port, db=1, socket_timeout=10)
        final = {}
        pending = [t.id for t in tasks if t.accepted]
        deadline = time.monotonic() + timeout
        last_note = 0.0
        try:
            while pending:
                still = []
                for k in range(0, len(pending), 1000):
                    chunk = pending[k:k + 1000]
                    raws = client.mget([f"celery-task-meta-{i}" for i in chunk])
                    for tid, raw in zip(chunk, raws):
                        meta = json.loads(raw) if raw is not None else None
                        if meta and meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
                            final[tid] = meta
                        else:
                            still.append(tid)
                pending = still
                now = time.monotonic()
                if not pending or now > deadline:
                    break
                if now - last_note > 5:
                    last_note = now
                    self.say(f"waiting for {len(pending)} results")
                time.sleep(0.25)
        finally:
            client.close()
        return final

    def count_reruns(self, tasks):
        """Attempts started more than once, from every worker incarnation's
        log ("task started: NAME[ID] attempt N", one write(2) per line, so
        SIGKILL loses none). Also sets rerun_resubmitted: how many of those
        are tasks the client submitted more than once (the broker refuses a
        repeated id while it holds the task and for its last 65,536 finished
        ones, so this should stay 0)."""
        starts = {}
        for i in range(3):
            path = self.dir / f"worker{i + 1}.log"
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for m in STARTED_LINE.finditer(text):
                key = (m.group(1), int(m.group(2)))
                starts[key] = starts.get(key, 0) + 1
        sends = {t.id: t.sends for t in tasks}
        extra = {(tid, a): c - 1 for (tid, a), c in starts.items() if c > 1 and tid in sends}
        self.rerun_resubmitted = sum(c for (tid, _), c in extra.items() if sends[tid] > 1)
        return sum(extra.values())

    def final_round_trip(self):
        """Every queue serves a task end to end; every worker answers ping."""
        with ztp.Client(self.broker_endpoint, timeout=10) as c:
            ids = {q: c.submit_ok("builtin.add", args=[40, 2], queue=q) for q in QUEUES}
            client = redis_py.Redis(host="127.0.0.1", port=self.redis_port, db=1,
                                    socket_timeout=10)
            deadline = time.monotonic() + 30
            try:
                for q, tid in ids.items():
                    while True:
                        raw = client.get(f"celery-task-meta-{tid}")
                        meta = json.loads(raw) if raw else None
                        if meta and meta.get("status") == "SUCCESS" and meta.get("result") == 42:
                            break
                        if time.monotonic() > deadline:
                            self.problems.append(f"final task on {q} did not round-trip "
                                                 f"(last meta: {meta})")
                            break
                        time.sleep(0.05)
            finally:
                client.close()
            names = set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not set(self.worker_names) <= names:
                result = self.broadcast(c, "ping")
                names = {n for n, r in result.items() if isinstance(r, dict) and r.get("pong")}
                if not set(self.worker_names) <= names:
                    time.sleep(0.2)
            if not set(self.worker_names) <= names:
                self.problems.append(f"workers not answering ping at the end: "
                                     f"{sorted(set(self.worker_names) - names)}")
            stats = self.broadcast(c, "stats")
        self.buffer_lost = sum(s.get("results_lost", 0) for s in stats.values()
                               if isinstance(s, dict))

    @staticmethod
    def broadcast(c, command):
        """Remote control of every worker through the broker; {name: result}
        ({} when no answer came)."""
        c._req += 1
        req = c._req
        c.send(ztp.CONTROL, {"req": req, "op": "broadcast", "command": command, "timeout": 2})
        deadline = time.monotonic() + 10
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {}
            try:
                reply = c.recv(left)
            except ztp.Timeout:
                return {}
            if reply.command == ztp.CONTROL_REPLY and reply.body.get("req") == req:
                return reply.body.get("result") or {} if reply.body.get("ok") else {}

    def diagnose(self, ids):
        """What the logs say about a few lost tasks."""
        logs = sorted(self.dir.glob("*.log"))
        for tid in ids[:5]:
            self.say(f"lost task {tid}:")
            for path in logs:
                for line in path.read_text(errors="replace").splitlines():
                    if tid in line:
                        self.say(f"  {path.name}: {line}")

    def stop_all(self):
        with self.lock:
            live = [w for w in self.workers if w is not None]
            for w in live:
                if w.alive():
                    w.popen.send_signal(signal.SIGTERM)
            for w in live:
                problem = w.stop(self.stop_timeout)
                if problem:
                    self.problems.append(problem)
            if self.broker is not None:
                problem = self.broker.stop(self.stop_timeout)
                if problem:
                    self.problems.append(problem)
            if self.redis is not None:
                problem = self.redis.stop(self.stop_timeout)
                if problem:
                    self.problems.append(problem)
            # earlier incarnations: all were SIGKILLed (and waited for)
            for p in self.all_procs:
                if p.alive():
                    p.kill()
                rep = p.sanitizer_report()
                if rep:
                    self.problems.append(f"sanitizer report in {p.label}:\n{rep}")

    # -- the whole run ------------------------------------------------------------------

    def run(self):
        self.redis_port = free_port()
        self.broker_port = free_port()
        self.events_port = free_port()
        self.broker_endpoint = f"tcp://127.0.0.1:{self.broker_port}"
        self.say(f"chaos: {self.n_tasks} tasks over {self.submit_seconds:.0f} s, seed {self.seed}, "
                 f"folder {self.dir}, binaries {self.bin_dir}")
        tasks = make_tasks(self.n_tasks, self.rng)
        chaos = threading.Thread(target=self.chaos_loop, name="chaos", daemon=True)
        try:
            self.start_redis()
            self.start_broker()
            for i in range(3):
                self.start_worker(i)
            self.t_submit = time.monotonic()
            chaos.start()
            self.submit_all(tasks)
            # no more faults once everything is submitted: the rest must converge
            self.stop_chaos.set()
            chaos.join(60)
            if chaos.is_alive():
                self.problems.append("the chaos thread did not stop within 60 s")
            self.say(f"all submitted; {self.counts['worker_kills']} worker kills, "
                     f"{self.counts['broker_kills']} broker kills, "
                     f"{self.counts['redis_restarts']} redis restarts")
            metas = self.wait_results(tasks, self.settle_seconds)
            accepted = [t for t in tasks if t.accepted]
            self.accepted = len(accepted)
            self.finished = 0
            for t in accepted:
                meta = metas.get(t.id)
                if meta is None:
                    self.lost_ids.append(t.id)
                    continue
                self.finished += 1
                ok = meta["status"] == t.expect_status
                if ok and t.expect_status == "SUCCESS":
                    ok = meta.get("result") == t.expect_result
                if not ok:
                    self.wrong.append((t.id, t.kind, t.msg.get("args"), meta.get("status"),
                                       meta.get("result")))
            self.lost = len(self.lost_ids)
            if self.lost_ids:
                self.diagnose(self.lost_ids)
            self.final_round_trip()
        except Exception as exc:  # noqa: BLE001 - the run's outcome, reported below
            import traceback
            self.problems.append(f"run failed: {exc!r}\n{traceback.format_exc()}")
            self.lost = self.accepted - self.finished if self.accepted else self.lost
        finally:
            self.stop_chaos.set()
            if chaos.is_alive():
                chaos.join(60)
            self.stop_all()
        self.rerun = self.count_reruns(tasks)
        self.report()
        return self

    def ok(self):
        return (not self.problems and self.lost == 0 and not self.wrong and not self.not_accepted
                and self.accepted == self.n_tasks)

    def summary_line(self):
        return (f"accepted / finished / lost / rerun: {self.accepted} / {self.finished} / "
                f"{self.lost} / {self.rerun}")

    def report(self):
        c = self.counts
        self.say(f"faults: {c['worker_kills']} worker SIGKILLs, {c['broker_kills']} broker "
                 f"SIGKILLs, {c['redis_restarts']} redis SIGKILLs; {c['crash_restarts']} "
                 f"unplanned worker deaths")
        self.say(f"workers' result buffers lost {self.buffer_lost} results")
        self.say(f"reruns: {self.rerun} attempts started more than once; "
                 f"{self.rerun_resubmitted} of them of tasks the client resubmitted, "
                 f"{self.rerun - self.rerun_resubmitted} redeliveries (a worker or the broker "
                 f"died with the task in flight)")
        self.say(f"client: {c['resubmits']} resubmits with the same id, {c['duplicate_id']} "
                 f"answered duplicate-id; {len(self.not_accepted)} never accepted")
        for w in self.wrong[:10]:
            self.say(f"WRONG result: {w}")
        if self.wrong:
            self.say(f"{len(self.wrong)} tasks have a wrong final state")
        for p in self.problems:
            self.say(f"PROBLEM: {p}")
        self.say(f"{'OK' if self.ok() else 'FAILED'}; logs in {self.dir}")
        print(self.summary_line(), file=self.out, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--minutes", type=float, default=None,
                    help="spread the submissions over this long (default: 40 s)")
    ap.add_argument("--worker-kill-every", type=float, default=3.0, metavar="S")
    ap.add_argument("--broker-kills", type=int, default=None,
                    help="default 2, or one per 5 minutes with --minutes")
    ap.add_argument("--redis-restarts", type=int, default=None,
                    help="default 1, or one per 10 minutes with --minutes")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--bin-dir", default=os.environ.get("ZT_BIN_DIR") or str(REPO / "build/bin"))
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs)")
    args = ap.parse_args(argv)
    seconds = args.minutes * 60 if args.minutes else 40.0
    broker_kills = args.broker_kills if args.broker_kills is not None else \
        max(2, int(seconds // 300))
    redis_restarts = args.redis_restarts if args.redis_restarts is not None else \
        max(1, int(seconds // 600))
    workdir = tempfile.mkdtemp(prefix="zt-chaos-")
    run = ChaosRun(args.bin_dir, workdir, tasks=args.tasks, submit_seconds=seconds,
                   worker_kill_every=args.worker_kill_every, broker_kills=broker_kills,
                   redis_restarts=redis_restarts, concurrency=args.concurrency, seed=args.seed,
                   settle_seconds=max(120.0, seconds / 4)).run()
    if run.ok() and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if run.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
