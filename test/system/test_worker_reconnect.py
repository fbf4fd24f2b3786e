"""A task the worker received on one connection and finished after that
connection changed is still reported with DONE, on the new connection
(PROTOCOL.md §6.3, §8), so the broker does not run it again; and the worker's
credit is counted once: a HELLO counts the slots free at that moment, so a
DONE returns its slot only when its task was still held when that HELLO went.

The broker here is a fake written from docs/PROTOCOL.md (a ROUTER socket in
the test), so the test decides exactly when the broker falls silent or
forgets the worker; the worker, Redis and the pool are real. Timings rest on
the worker's fixed reconnect interval (1 s) against task lengths with at
least half a second of margin either way."""

import signal
import time

import pytest
import zmq

import ztp
from conftest import tail, wait_until

HEARTBEAT_MS = 100  # what the fake broker's WELCOME tells the worker
LIVENESS = 3  # so the worker gives up on a silent broker after 0.3 s
CAPACITY = 2  # -c 1 --prefetch-multiplier 2


class FakeBroker:
    """A ROUTER that records every message with its sender and, unless
    silent, heartbeats the identity it last welcomed."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.log = []  # (identity, command, body) in arrival order
        self.active = None  # identity to heartbeat
        self.silent = False
        self._last_hb = 0.0

    def close(self):
        self.sock.close(0)
        self.ctx.term()

    def send(self, identity, command, body, extra=None):
        frames = [identity, ztp.SIGNATURE, bytes([command]), ztp.pack(body)]
        if extra is not None:
            frames.append(ztp.pack(extra))
        self.sock.send_multipart(frames)

    def welcome(self, identity):
        self.send(identity, ztp.WELCOME,
                  {"broker": "fake", "heartbeat_ms": HEARTBEAT_MS, "liveness": LIVENESS})
        self.active = identity
        self.silent = False

    def dispatch(self, identity, msg, redelivered=False):
        self.send(identity, ztp.DISPATCH, msg,
                  {"id": msg["id"], "retries": 0, "redelivered": redelivered, "revoked": None})

    def pump(self, seconds):
        """Receives (and heartbeats) for up to seconds."""
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if self.active is not None and not self.silent and \
                    now - self._last_hb >= HEARTBEAT_MS / 1000:
                self.send(self.active, ztp.HEARTBEAT, {})
                self._last_hb = now
            left = deadline - now
            if left <= 0:
                return
            if self.sock.poll(int(min(left, 0.02) * 1000) or 1):
                frames = self.sock.recv_multipart()
                identity, rest = frames[0], frames[1:]
                reply = ztp.Reply(rest)
                self.log.append((identity, reply.command, reply.body))

    def wait_for(self, command, timeout, pred=lambda identity, body: True, what=None):
        """Pumps until a message of command satisfying pred is in the log;
        returns (index, identity, body)."""
        def find():
            for i, (identity, cmd, body) in enumerate(self.log):
                if cmd == command and pred(identity, body):
                    return i, identity, body
            return None
        deadline = time.monotonic() + timeout
        while True:
            found = find()
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no {what or ztp.COMMAND_NAMES[command]} within {timeout} s; got "
                    + ", ".join(f"{ztp.COMMAND_NAMES.get(c, c)}{b!r}"
                                for _, c, b in self.log[-30:]))
            self.pump(0.05)

    def messages(self, command, task_id=None):
        return [(identity, body) for identity, cmd, body in self.log
                if cmd == command and (task_id is None or body.get("id") == task_id)]


@pytest.fixture
def fake():
    broker = FakeBroker()
    yield broker
    broker.close()


def start(cluster, fake):
    """A real worker (-c 1, capacity 2) on the fake broker, welcomed."""
    w = cluster.start_worker(queues=["rc"], concurrency=1, prefetch=CAPACITY, broker=fake,
                             wait_online=False)
    _, identity, hello = fake.wait_for(ztp.HELLO, 10)
    assert hello["credit"] == CAPACITY, hello
    fake.welcome(identity)
    return w, identity


def run_task(fake, identity, seconds):
    msg = ztp.task_message("builtin.sleep", args=[seconds], queue="rc")
    fake.dispatch(identity, msg)
    fake.wait_for(ztp.STARTED, 5, lambda i, b: b.get("id") == msg["id"])
    return msg["id"]


def new_hello(fake, old_identity, timeout=10):
    """The first HELLO from another identity (the worker's new socket)."""
    return fake.wait_for(ztp.HELLO, timeout, lambda i, b: i != old_identity, "HELLO on a new socket")


def stop(cluster, fake, w):
    """Warm shutdown while the fake still answers heartbeats; exit 0."""
    w.proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while w.proc.alive() and time.monotonic() < deadline:
        fake.pump(0.05)
    assert w.stop() == 0, tail(w.proc.logfile)


def done_credit(body):
    return body.get("credit", 0)


@pytest.mark.zt_timeout(40)
def test_done_after_reconnect_for_task_still_running(cluster, fake):
    """Broker falls silent while a task runs; the worker reconnects (new
    socket) before the task ends. Its DONE goes to the new socket and, since
    the new HELLO counted the task's slot as taken, carries credit 1."""
    w, first = start(cluster, fake)
    tid = run_task(fake, first, 2.5)
    fake.silent = True  # the worker gives up after 0.3 s, reconnects 1 s later
    _, second, hello = new_hello(fake, first)
    assert hello["credit"] == CAPACITY - 1, hello  # the running task holds a slot
    fake.welcome(second)
    _, who, done = fake.wait_for(ztp.DONE, 10, lambda i, b: b.get("id") == tid)
    assert who == second
    assert done["status"] == "success", done
    assert done_credit(done) == 1, done
    assert len(fake.messages(ztp.DONE, tid)) == 1
    assert not fake.messages(ztp.CREDIT), "the slot was returned by DONE, not CREDIT too"
    assert cluster.meta(tid)["status"] == "SUCCESS"
    stop(cluster, fake, w)


@pytest.mark.zt_timeout(40)
def test_done_after_reconnect_for_task_finished_while_disconnected(cluster, fake):
    """The task ends while the worker has no connection (after it gave up on
    the silent broker, before it reconnects). The DONE waits for the new
    socket; the new HELLO already counts the slot free, so it carries no
    credit. Whatever the timing, HELLO credit + DONE credit = capacity."""
    w, first = start(cluster, fake)
    tid = run_task(fake, first, 0.8)
    fake.silent = True
    wait_until(lambda: (cluster.meta(tid) or {}).get("status") == "SUCCESS", 10,
               message="the task's result in Redis")
    _, who, done = fake.wait_for(ztp.DONE, 10, lambda i, b: b.get("id") == tid)
    assert who != first, "the task ended before the worker gave up on the broker"
    hellos = [b for i, b in fake.messages(ztp.HELLO) if i == who]
    assert hellos, "DONE on a socket that sent no HELLO"
    assert hellos[-1]["credit"] + done_credit(done) == CAPACITY, (hellos[-1], done)
    assert hellos[-1]["credit"] == CAPACITY and done_credit(done) == 0, \
        f"expected the task to end while disconnected: {hellos[-1]}, {done}"
    assert len(fake.messages(ztp.DONE, tid)) == 1
    fake.welcome(who)
    stop(cluster, fake, w)


@pytest.mark.zt_timeout(40)
def test_done_after_unknown_worker_error(cluster, fake):
    """The broker answers ERROR unknown-worker while a task runs: the worker
    says HELLO again on the same socket and reports the task with DONE."""
    w, identity = start(cluster, fake)
    tid = run_task(fake, identity, 1.0)
    fake.send(identity, ztp.ERROR, {"code": "unknown-worker", "reason": "who are you"})
    deadline = time.monotonic() + 5
    while len(fake.messages(ztp.HELLO)) < 2 and time.monotonic() < deadline:
        fake.pump(0.05)
    hellos = fake.messages(ztp.HELLO)
    assert len(hellos) == 2 and hellos[1][0] == identity, hellos
    assert hellos[1][1]["credit"] == CAPACITY - 1, hellos
    fake.welcome(identity)
    _, who, done = fake.wait_for(ztp.DONE, 10, lambda i, b: b.get("id") == tid)
    assert who == identity
    assert done["status"] == "success" and done_credit(done) == 1, done
    assert not fake.messages(ztp.CREDIT)
    stop(cluster, fake, w)


@pytest.mark.zt_timeout(40)
def test_redelivery_of_a_task_running_here_is_answered_by_the_running_copy(cluster, fake):
    """After the reconnect the broker (having declared the old socket dead)
    dispatches the same task again to the new socket while the first copy
    still runs: the worker does not run it twice. It reports STARTED for it
    on the new socket, returns the credit the second DISPATCH took, and the
    running copy's DONE answers for the delivery."""
    w, first = start(cluster, fake)
    msg = ztp.task_message("builtin.sleep", args=[2.5], queue="rc")
    fake.dispatch(first, msg)
    fake.wait_for(ztp.STARTED, 5, lambda i, b: b.get("id") == msg["id"])
    fake.silent = True
    _, second, hello = new_hello(fake, first)
    assert hello["credit"] == CAPACITY - 1, hello
    fake.welcome(second)
    fake.dispatch(second, msg, redelivered=True)
    fake.wait_for(ztp.STARTED, 5, lambda i, b: i == second and b.get("id") == msg["id"],
                  "STARTED on the new socket")
    _, _, credit = fake.wait_for(ztp.CREDIT, 5)
    assert credit["credit"] == 1, credit
    _, who, done = fake.wait_for(ztp.DONE, 10, lambda i, b: b.get("id") == msg["id"])
    assert who == second and done["status"] == "success" and done_credit(done) == 1, done
    fake.pump(0.3)
    assert len(fake.messages(ztp.DONE, msg["id"])) == 1
    log = w.proc.logfile.read_text()
    assert log.count(f"task succeeded: builtin.sleep[{msg['id']}]") == 1, log
    stop(cluster, fake, w)
