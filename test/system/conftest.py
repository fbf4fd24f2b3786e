"""Fixtures for the system tests: real redis-server, zmqbroker and zmqworker
processes on free loopback ports, each with its own log file in a temporary
folder, always stopped (SIGTERM, then SIGKILL after a bound) and checked for a
clean exit and for sanitizer reports. Logs of the processes of a failed test
are attached to its report.

Binaries come from $ZT_BIN_DIR (ctest sets it), else <repo>/build/bin.
Every wait here is a poll against a deadline; nothing sleeps "long enough".
"""

import gc
import json
import os
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

import msgpack
import pytest
import redis as redis_py
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ztp  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ZT_BIN_DIR") or REPO / "build" / "bin")
LOGLEVEL = os.environ.get("ZT_TEST_LOGLEVEL", "info")

FINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")

# How long a process gets to exit after SIGTERM before we SIGKILL it and
# call that a failure. Generous because the ASan build is slower.
STOP_TIMEOUT = float(os.environ.get("ZT_TEST_STOP_TIMEOUT", "10"))
# Default bound on one test (seconds); @pytest.mark.zt_timeout(N) overrides.
TEST_TIMEOUT = float(os.environ.get("ZT_TEST_TIMEOUT", "90"))

SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|ThreadSanitizer"
)


# ---------------------------------------------------------------------------
# small helpers


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Polls predicate() until it returns a truthy value (which is returned)
    or timeout seconds pass (AssertionError naming message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def binary(name):
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} does not exist (build first, or set ZT_BIN_DIR)", pytrace=False)
    return str(path)


def tail(path, lines=150):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    parts = text.splitlines()
    if len(parts) > lines:
        parts = [f"... ({len(parts) - lines} earlier lines)"] + parts[-lines:]
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# processes


class Proc:
    """One program we started, in its own process group so that its children
    (the worker's pool) can be cleaned up with it. stdout+stderr go to
    <dir>/<name>.out, the program's own log (--logfile) to <dir>/<name>.log."""

    def __init__(self, name, argv, workdir, env, logfile=None):
        self.name = name
        self.argv = argv
        self.logfile = logfile
        self.outfile = Path(workdir) / f"{name}.out"
        self.env = env
        self.deliberately_killed = False
        self.problems = []
        self.returncode = None
        self._out = open(self.outfile, "ab")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _kill_group(self):
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self):
        """SIGKILL the whole process group (the program and its children):
        a machine or OOM-style death. Not a failure of the program."""
        self.deliberately_killed = True
        self._kill_group()
        self.popen.wait(STOP_TIMEOUT)
        self.returncode = self.popen.returncode
        self._out.close()

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Asks the program to exit (sig to its main process), waits up to
        timeout, then SIGKILLs the group. Records a problem unless it exited
        0 in time. Returns the exit status (negative: killed by that signal)."""
        if self.returncode is not None:
            return self.returncode
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout)
            if rc is None:
                self.problems.append(
                    f"{self.name} (pid {self.pid}) did not exit within {timeout} s of "
                    f"{signal.Signals(sig).name}; killed"
                )
                self._kill_group()
                self.popen.wait(STOP_TIMEOUT)
            elif rc != 0:
                self.problems.append(
                    f"{self.name} exited with status {rc} after {signal.Signals(sig).name}"
                )
        else:
            rc = self.popen.returncode
            if rc != 0 and not self.deliberately_killed:
                self.problems.append(f"{self.name} died on its own with status {rc}")
        # Leftover children (a pool process orphaned by a bug) must not outlive the test.
        self._kill_group()
        self.returncode = self.popen.returncode
        self._out.close()
        return self.returncode

    def sanitizer_report(self):
        try:
            text = self.outfile.read_text(errors="replace")
        except OSError:
            return None
        m = SANITIZER_PATTERNS.search(text)
        return text[max(0, m.start() - 200) : m.start() + 3000] if m else None

    def log_text(self):
        out = []
        if self.logfile:
            out.append(tail(self.logfile))
        out.append(tail(self.outfile, 80))
        return "\n--- stdout/stderr ---\n".join(out)


class RedisServer:
    """A private redis-server on a free loopback port. No persistence by
    default; persistent=True keeps an append-only file fsynced before every
    reply (appendfsync always), so a SIGKILLed server restarted on the same
    folder has every write it confirmed. kill() and start() restart it on the
    same port and folder (Redis faults); every incarnation is in self.procs."""

    def __init__(self, workdir, persistent=False, name="redis"):
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.persistent = persistent
        self.procs = []
        self.proc = None
        self.client = redis_py.Redis(host="127.0.0.1", port=self.port, db=1,
                                     decode_responses=True, socket_timeout=5)
        self.start()

    def start(self, timeout=10):
        """Starts (again) on the same port and folder; waits for PING."""
        persistence = (["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
                       if self.persistent else ["--save", "", "--appendonly", "no"])
        argv = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            *persistence,
            "--dir", str(self.dir),
            "--logfile", str(self.dir / f"{self.name}.log"),
            "--daemonize", "no",
        ]
        self.proc = Proc(f"{self.name}{len(self.procs) + 1}", argv, self.dir, dict(os.environ),
                         self.dir / f"{self.name}.log")
        self.procs.append(self.proc)

        def ping():
            if not self.proc.alive():
                raise RuntimeError(f"redis-server exited:\n{self.proc.log_text()}")
            try:
                return self.client.ping()
            except (redis_py.exceptions.ConnectionError, redis_py.exceptions.BusyLoadingError):
                return False

        wait_until(ping, timeout, message="redis-server to answer PING")

    def kill(self):
        """SIGKILL: Redis dies as in a crash (its connections are cut)."""
        self.client.close()
        self.proc.kill()

    def url(self, db=1):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self):
        self.client.close()
        self.proc.stop()


# ---------------------------------------------------------------------------
# events


class Events:
    """Subscribes to the broker's events socket (§10) from a background thread
    and keeps every event as a dict with its "type" plus "_frame0" (the
    first frame) and "_rx" (local receive time)."""

    def __init__(self, endpoint, curve=None):
        self.endpoint = endpoint
        self.curve = curve  # ztp.Curve: subscribe through CURVE
        self.events = []
        self.cond = threading.Condition()
        self.errors = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self):
        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 20)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        if self.curve is not None:
            self.curve.apply(sock)
        sock.connect(self.endpoint)
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(50):
                    continue
                frames = sock.recv_multipart()
                try:
                    body = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
                    if not isinstance(body, dict):
                        raise ValueError("body is not a map")
                    body["_frame0"] = frames[0].decode()
                except Exception as exc:  # noqa: BLE001 - recorded, asserted by tests
                    with self.cond:
                        self.errors.append(f"bad event {frames!r}: {exc}")
                    continue
                body["_rx"] = time.time()
                with self.cond:
                    self.events.append(body)
                    self.cond.notify_all()
        finally:
            sock.close(0)
            ctx.term()

    def close(self):
        self._stop.set()
        self._thread.join(5)

    def snapshot(self, type_=None, id_=None):
        with self.cond:
            evs = list(self.events)
        return [
            e for e in evs
            if (type_ is None or e.get("type") == type_) and (id_ is None or e.get("id") == id_)
        ]

    def wait_for(self, predicate, timeout=10.0, what="event"):
        """Returns the first event (in arrival order) matching predicate,
        waiting up to timeout seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for e in self.events[seen:]:
                    if predicate(e):
                        return e
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    types = {}
                    for e in self.events:
                        types[e.get("type")] = types.get(e.get("type"), 0) + 1
                    raise AssertionError(
                        f"timed out after {timeout} s waiting for {what}; events seen: {types}"
                    )
                self.cond.wait(left)

    def wait_count(self, type_, count, timeout=10.0, ids=None):
        """Waits until at least count events of type_ (restricted to ids, if
        given) have arrived; returns them."""
        ids = set(ids) if ids is not None else None

        def matching():
            return [
                e for e in self.events
                if e.get("type") == type_ and (ids is None or e.get("id") in ids)
            ]

        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = matching()
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s: {len(got)} of {count} {type_} events"
                    )
                self.cond.wait(left)

    def sync(self, client, timeout=10.0):
        """Makes sure our subscription is live (PUB/SUB drops whatever is
        published before the subscription reaches the broker): submits probe
        tasks to a queue nobody serves until one's task-received arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tid = "probe-" + ztp.new_id()
            client.submit_ok("builtin.noop", queue="zt-events-probe", id=tid)
            try:
                self.wait_for(lambda e, t=tid: e.get("type") == "task-received" and e.get("id") == t,
                              timeout=0.3, what="probe")
                return
            except AssertionError:
                continue
        raise AssertionError(f"events socket {self.endpoint} delivered nothing in {timeout} s")


# ---------------------------------------------------------------------------
# the cluster under test


class Broker:
    def __init__(self, proc, port, events_port):
        self.proc = proc
        self.port = port
        self.events_port = events_port
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.events_endpoint = f"tcp://127.0.0.1:{events_port}"


class Worker:
    def __init__(self, proc, name, queues, concurrency):
        self.proc = proc
        self.name = name
        self.queues = queues
        self.concurrency = concurrency

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """SIGKILL the worker and its pool (see Proc.kill)."""
        self.proc.kill()

    def stop(self, sig=signal.SIGTERM):
        return self.proc.stop(sig)


class CtlResult:
    def __init__(self, argv, proc, json_out):
        self.argv = argv
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.data = None
        self.json_error = None
        if json_out and self.out.strip():
            try:
                self.data = json.loads(self.out)
            except ValueError as exc:
                self.json_error = str(exc)

    def __repr__(self):
        return (f"zmqctl {' '.join(self.argv[1:])!s}\n  exit {self.rc}\n"
                f"  stdout: {self.out.strip()[:2000]}\n  stderr: {self.err.strip()[:2000]}")


class CurveKeys:
    """CURVE certificates for one test (docs/SECURITY.md), made by the real
    `zmqctl keygen`: the broker's pair in broker/, each peer's pair in
    peers/NAME/, and the public certificates the broker accepts in allowed/."""

    def __init__(self, folder):
        self.dir = Path(folder)
        self.allowed = self.dir / "allowed"
        self.allowed.mkdir(parents=True, exist_ok=True)
        self.secret = {}
        self.public = {}
        self.broker_secret, self.broker_public = self._keygen("broker", "admin",
                                                              self.dir / "broker")

    def _keygen(self, name, role, folder):
        p = subprocess.run([binary("zmqctl"), "--json", "keygen", name, "--role", role,
                            "--dir", str(folder)], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"zmqctl keygen {name}: {p.stderr}"
        out = json.loads(p.stdout)
        return Path(out["secret"]), Path(out["public"])

    def add(self, name, role, allow=True):
        """A new pair for peer name with role; its public half goes into
        allowed/ unless allow=False. Returns the secret certificate's path."""
        sec, pub = self._keygen(name, role, self.dir / "peers" / name)
        self.secret[name], self.public[name] = sec, pub
        if allow:
            self.allow(name)
        return sec

    def allow(self, name):
        shutil.copyfile(self.public[name], self.allowed / f"{name}.key")

    def revoke(self, name):
        (self.allowed / f"{name}.key").unlink()

    def key(self, name):
        return ztp.load_cert(self.public[name])[0]

    def broker_env(self):
        return {"ZT_CURVE_SERVER_CERT_FILE": str(self.broker_secret),
                "ZT_CURVE_ALLOWED_DIR": str(self.allowed)}

    def client_env(self, name):
        return {"ZT_CURVE_CLIENT_CERT_FILE": str(self.secret[name]),
                "ZT_CURVE_BROKER_KEY": str(self.broker_public)}

    def curve(self, name):
        return ztp.Curve.from_files(self.secret[name], self.broker_public)


class Cluster:
    """Everything one test starts. All processes are stopped in teardown
    (workers first, then brokers) and checked for a clean exit."""

    def __init__(self, workdir, redis_server):
        self.dir = Path(workdir)
        self.redis_server = redis_server
        self.redis = redis_server.client
        self.backend_url = redis_server.url(1)
        self.procs = []
        self.workers = []
        self.brokers = []
        self.broker = None
        self.clients = []
        self.event_streams = []
        self.problems = []
        self._seq = 0
        self.curve_keys = None  # CurveKeys once use_curve() was called
        self.curve_client = None  # the key name clients, zmqctl and events use

    def use_curve(self, keys, client):
        """From now on the broker runs CURVE with keys, and this cluster's
        own clients (client(), events(), zmqctl(), the liveness checks) use
        the key named client; pass a worker's key to start_worker(env=...)."""
        self.curve_keys = keys
        self.curve_client = client

    def _curve(self):
        return self.curve_keys.curve(self.curve_client) if self.curve_keys else None

    # -- environment --------------------------------------------------------

    def env(self, extra=None):
        env = dict(os.environ)
        if self.broker is not None:
            env["ZMQ_BROKER_URL"] = self.broker.endpoint
            env["ZMQ_EVENTS_URL"] = self.broker.events_endpoint
        else:
            env.pop("ZMQ_BROKER_URL", None)
            env.pop("ZMQ_EVENTS_URL", None)
        env["RESULT_BACKEND"] = self.backend_url
        if self.curve_keys is not None:
            # the broker reads the server settings, every other program the client ones
            env.update(self.curve_keys.broker_env())
            env.update(self.curve_keys.client_env(self.curve_client))
        for key, value in (extra or {}).items():
            if value is None:  # None removes a variable
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _next(self, prefix):
        self._seq += 1
        return f"{prefix}{self._seq}"

    # -- broker -------------------------------------------------------------

    def start_broker(self, heartbeat_ms=None, liveness=None, max_message_bytes=None,
                     port=None, events_port=None, extra=(), wait=True, wrapper=(),
                     ping_timeout=15):
        """Starts zmqbroker on free loopback ports (or the given ones, to
        restart on the same endpoints) and waits until it answers ping.
        wrapper: a command line to run it under (valgrind ...)."""
        port = port or free_port()
        events_port = events_port or free_port()
        name = self._next("broker")
        logfile = self.dir / f"{name}.log"
        argv = list(wrapper) + [
            binary("zmqbroker"),
            "--bind", f"tcp://127.0.0.1:{port}",
            "--events-bind", f"tcp://127.0.0.1:{events_port}",
            "--data-dir", str(self.dir / "broker-data"),
            "--loglevel", LOGLEVEL,
            "--logfile", str(logfile),
        ]
        if heartbeat_ms is not None:
            argv += ["--heartbeat-ms", str(heartbeat_ms)]
        if liveness is not None:
            argv += ["--liveness", str(liveness)]
        if max_message_bytes is not None:
            argv += ["--max-message-bytes", str(max_message_bytes)]
        argv += list(extra)
        proc = Proc(name, argv, self.dir, self.env(), logfile)
        self.procs.append(proc)
        broker = Broker(proc, port, events_port)
        self.brokers.append(broker)
        self.broker = broker
        if wait:
            ok = ztp.wait_ping(broker.endpoint, timeout=ping_timeout, is_alive=proc.alive,
                               curve=self._curve())
            if not ok:
                raise AssertionError(
                    f"zmqbroker did not answer ping on {broker.endpoint} "
                    f"(alive={proc.alive()}):\n{proc.log_text()}")
        return broker

    # -- workers ------------------------------------------------------------

    def start_worker(self, queues=("default",), concurrency=1, name=None, prefetch=None,
                     config=None, extra=(), env=None, wait_online=True, broker=None,
                     use_cli_urls=True):
        """Starts zmqworker; waits until the broker lists it online."""
        broker = broker or self.broker
        label = self._next("worker")
        name = name or f"{label}@zt"
        logfile = self.dir / f"{label}.log"
        argv = [binary("zmqworker")]
        if use_cli_urls:
            argv += ["-b", broker.endpoint, "--result-backend", self.backend_url]
        if queues:
            argv += ["-Q", ",".join(queues)]
        if concurrency is not None:
            argv += ["-c", str(concurrency)]
        if prefetch is not None:
            argv += ["--prefetch-multiplier", str(prefetch)]
        if config is not None:
            argv += ["--config", str(config)]
        argv += ["-n", name, "--loglevel", LOGLEVEL, "--logfile", str(logfile)]
        argv += list(extra)
        proc = Proc(label, argv, self.dir, self.env(env), logfile)
        self.procs.append(proc)
        worker = Worker(proc, name, list(queues or ["default"]), concurrency)
        self.workers.append(worker)
        if wait_online:
            self.wait_worker_online(worker)
        return worker

    def worker_entries(self, client=None):
        c = client or self.client()
        return c.control("workers")

    def wait_worker_online(self, worker, timeout=15):
        c = self.client()

        def online():
            if not worker.proc.alive():
                raise AssertionError(
                    f"{worker.name} exited with {worker.proc.popen.returncode}:\n"
                    f"{worker.proc.log_text()}")
            try:
                entries = c.control("workers", timeout=1)
            except ztp.Timeout:
                return False
            return any(e.get("name") == worker.name and e.get("online", True) for e in entries)

        wait_until(online, timeout, interval=0.05, message=f"{worker.name} to be online")

    def wait_worker_gone(self, worker, timeout=15):
        c = self.client()

        def gone():
            entries = c.control("workers", timeout=1)
            return not any(e.get("name") == worker.name and e.get("online", True)
                           for e in entries)

        wait_until(gone, timeout, interval=0.05, message=f"{worker.name} to be offline")

    # -- clients ------------------------------------------------------------

    def client(self, timeout=5.0, broker=None):
        """A ztp.Client on the (current) broker; closed in teardown."""
        broker = broker or self.broker
        c = ztp.Client(broker.endpoint, timeout=timeout, curve=self._curve())
        self.clients.append(c)
        return c

    def events(self, broker=None):
        broker = broker or self.broker
        ev = Events(broker.events_endpoint, curve=self._curve())
        self.event_streams.append(ev)
        return ev

    def zmqctl(self, *args, timeout=30, json_out=True, broker_url=True, backend=True,
               env=None, global_args=()):
        """Runs zmqctl [-b EP] [--result-backend URL] [--json] ARGS... and
        returns a CtlResult (rc, out, err, data = parsed JSON)."""
        argv = [binary("zmqctl")]
        if broker_url and self.broker is not None:
            argv += ["-b", self.broker.endpoint]
        if backend:
            argv += ["--result-backend", self.backend_url]
        if json_out:
            argv += ["--json"]
        argv += list(global_args)
        argv += [str(a) for a in args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=self.env(env), stdin=subprocess.DEVNULL)
        res = CtlResult(argv, proc, json_out)
        m = SANITIZER_PATTERNS.search(res.err)
        if m:
            self.problems.append(f"sanitizer report from {res!r}")
        return res

    def use_redis(self, server):
        """Points this cluster (workers started from now on, meta(),
        wait_result...) at another RedisServer."""
        self.redis_server = server
        self.redis = server.client
        self.backend_url = server.url(1)

    def inspect(self, command, timeout=3.0, client=None):
        """Remote control through the broker (PROTOCOL.md §6.5): asks every
        worker `command` (stats, ping, active...), waits up to timeout s for
        their answers; returns {worker name: result}."""
        c = client or self.client()
        c._req += 1
        req = c._req
        c.send(ztp.CONTROL, {"req": req, "op": "broadcast", "command": command,
                             "timeout": timeout})
        deadline = time.monotonic() + timeout + 5
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ztp.Timeout(f"no CONTROL-REPLY to broadcast {command!r}")
            reply = c.recv(left)
            if reply.command == ztp.CONTROL_REPLY and reply.body.get("req") == req:
                if not reply.body.get("ok"):
                    raise ztp.ControlError("broadcast", reply.body.get("error"))
                return reply.body["result"]

    # -- results ------------------------------------------------------------

    def meta(self, task_id):
        """The task's Celery meta from Redis, or None (PENDING)."""
        raw = self.redis.get(f"celery-task-meta-{task_id}")
        return json.loads(raw) if raw is not None else None

    def wait_result(self, task_id, timeout=15.0, states=FINAL_STATES):
        """Polls Redis until the task's status is one of states; returns the meta."""
        last = [None]

        def done():
            m = self.meta(task_id)
            last[0] = m
            return m if m and m.get("status") in states else None

        try:
            return wait_until(done, timeout, interval=0.02,
                              message=f"task {task_id} to reach {states}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last meta: {last[0]}") from None

    def wait_results(self, ids, timeout=30.0, states=FINAL_STATES):
        """Waits for all ids to reach a final state (MGET polling); returns
        {id: meta}."""
        ids = list(ids)
        metas = {}
        pending = list(ids)
        deadline = time.monotonic() + timeout
        while pending:
            keys = [f"celery-task-meta-{i}" for i in pending]
            still = []
            for i, raw in zip(pending, self.redis.mget(keys)):
                m = json.loads(raw) if raw is not None else None
                if m and m.get("status") in states:
                    metas[i] = m
                else:
                    still.append(i)
            pending = still
            if pending and time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(pending)} of {len(ids)} tasks not final after {timeout} s, "
                    f"e.g. {pending[:5]}")
            if pending:
                time.sleep(0.05)
        return metas

    # -- teardown -----------------------------------------------------------

    def shutdown(self):
        for ev in self.event_streams:
            ev.close()
        for c in self.clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        # Workers first (warm shutdown says BYE to a live broker), all at once.
        live_workers = [w.proc for w in self.workers if w.proc.returncode is None]
        for p in live_workers:
            if p.alive():
                try:
                    p.popen.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in live_workers:
            p.stop()
        for b in self.brokers:
            b.proc.stop()
        problems = list(self.problems)
        for p in self.procs:
            problems += p.problems
            rep = p.sanitizer_report()
            if rep:
                problems.append(f"sanitizer report in {p.name}:\n{rep}")
        return problems


# ---------------------------------------------------------------------------
# fixtures and hooks


def pytest_configure(config):
    config.addinivalue_line("markers", "zt_timeout(seconds): bound on one test's run time")
    config.addinivalue_line("markers", "issue3: needs issue 3 (prefork pool, crash handling)")
    config.addinivalue_line("markers", "slow: runs more than a few seconds")


@pytest.fixture(scope="session")
def redis_server():
    tmp = tempfile.mkdtemp(prefix="zt-redis-")
    server = RedisServer(tmp)
    yield server
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def cluster(request, redis_server, tmp_path):
    c = Cluster(tmp_path, redis_server)
    request.node._zt_cluster = c
    yield c
    problems = c.shutdown()
    if problems:
        pytest.fail("processes did not end cleanly:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def own_redis(cluster, tmp_path):
    """A redis-server of this test alone (the test may kill and restart it);
    the cluster writes its results there. Stopped at the end."""
    server = RedisServer(tmp_path / "own-redis")
    cluster.use_redis(server)
    yield server
    server.stop()


@pytest.fixture
def broker(cluster):
    """A broker with a short heartbeat (200 ms x 3) so liveness is fast."""
    return cluster.start_broker(heartbeat_ms=200, liveness=3)


@pytest.fixture
def client(cluster, broker):
    return cluster.client()


@pytest.fixture(scope="session")
def celery_app(redis_server):
    from celery import Celery

    app = Celery("zt-tests", backend=redis_server.url(1))
    yield app
    # AsyncResult.__del__ unsubscribes through Redis. Results still alive at
    # interpreter exit (an exception raised by get() keeps its frame, and so
    # the result, in a cycle) would try that after Redis stopped and print
    # noise after pytest's summary: let go of them while Redis runs.
    import celery.result

    backend = app.backend
    gc.collect()
    for obj in gc.get_objects():
        if isinstance(obj, celery.result.AsyncResult) and obj.backend is backend:
            try:
                backend.remove_pending_result(obj)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
            obj.backend = None
    app.close()


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("zt_timeout")
    seconds = float(marker.args[0]) if marker else TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise _TestTimeout(f"test exceeded its {seconds} s bound")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    c = getattr(item, "_zt_cluster", None)
    if c is None:
        return
    for p in c.procs:
        rep.sections.append((f"{p.name}: {' '.join(p.argv)}", p.log_text()))


# Lines a test wants in the run's closing summary, whether or not pytest
# shows its output (-s): the chaos suite's `accepted / finished / lost /
# rerun` line. Appended through the `summary_lines` fixture.
SUMMARY_LINES = []


@pytest.fixture
def summary_lines():
    return SUMMARY_LINES


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if SUMMARY_LINES:
        terminalreporter.section("zt summary")
        for line in SUMMARY_LINES:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    # A run that collected nothing must not look like success (pytest says 5;
    # keep it non-zero even if a caller maps 5 away).
    if session.testscollected == 0 and exitstatus == 0:
        session.exitstatus = 5
