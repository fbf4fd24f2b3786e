"""Issue 4, "Separate hosts": the broker, Redis, two workers and the client
each in a network namespace of their own, joined by veth pairs to a bridge
(itself in a namespace, so nothing touches the machine's own network), with
every task, heartbeat, result and event crossing TCP between them.

Then one worker's cable is pulled (its veth's far end goes down: no FIN, no
RST, packets just vanish) for longer than the broker's heartbeat timeout
(heartbeat_ms x liveness) while it runs tasks:
- the broker declares it dead (worker-offline, heartbeat-lost) and the tasks
  it held are redelivered to, and finished by, the other worker;
- the cut worker keeps running: its own copies of those tasks finish during
  the cut, their results wait in its Redis write buffer (Redis is across the
  cut too) and their DONEs wait for the link;
- when the cable is back it reconnects (a new HELLO: worker-online, listed by
  `zmqctl workers`) and serves new tasks.

What "no result lost or duplicated in Redis" means here, from
docs/PROTOCOL.md §6.3, §8 and §9 (at-least-once delivery):
- every submitted id ends with exactly one key, celery-task-meta-<id>, status
  SUCCESS with the right value, and no other key exists;
- a task the cut worker held may have run twice (once per worker): the backend
  then sees two final writes to that one key, and they must agree (same status,
  same result), and the last state written to it must be final (a late write
  never leaves it STARTED); every other task is written final exactly once;
- the broker counts one outcome per task: one task-succeeded event per id and
  `succeeded` = number of tasks, whichever DONE came first (the cut worker's
  late DONE is accepted if the redelivered copy still runs elsewhere, ignored
  if it already finished); `redelivered` = the tasks the cut worker held.

Needs root and a kernel that allows network namespaces, veth and bridges
(iproute2's `ip`). Where that is refused the test is skipped with the reason,
unless ZT_REQUIRE_NETNS=1 (then it fails). Namespaces are named
zth<pid>x<token>-<host> and always deleted in a finalizer; ones left by a
crashed earlier run (their pid gone) are deleted, with any process still in
them, before a run starts.
"""

import contextlib
import ctypes
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_py

import ztp
from conftest import LOGLEVEL, SANITIZER_PATTERNS, Events, Proc, binary, wait_until

HEARTBEAT_MS = 200
LIVENESS = 3
DEAD_AFTER = HEARTBEAT_MS * LIVENESS / 1000  # seconds of silence before "dead"
SLEEP_S = 1.5  # the tasks that are running when the cable is pulled
CONCURRENCY = 2  # per worker; with --prefetch-multiplier 1 a worker holds only running tasks
BROKER_PORT, EVENTS_PORT, REDIS_PORT = 5555, 5556, 6379  # private namespaces: no collisions

NS_PREFIX = "zth"
NS_RE = re.compile(rf"^{NS_PREFIX}(\d+)x[0-9a-f]+-")
HOSTS = ("broker", "redis", "w1", "w2", "client")
HOST_NUMBER = {"broker": 10, "redis": 11, "w1": 21, "w2": 22, "client": 30}
REQUIRE = os.environ.get("ZT_REQUIRE_NETNS") == "1"

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsUnavailable(Exception):
    pass


def ip(*args, check=True, timeout=10):
    """Runs `ip ARGS...`; returns the CompletedProcess (raises on failure if check)."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({proc.returncode}): "
                           f"{proc.stderr.strip()}")
    return proc


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(ns):
    """Moves the calling thread (only) into network namespace ns and back.
    Sockets made meanwhile, and threads started meanwhile (a zmq context's I/O
    thread, the Events reader), stay in ns for good."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_delete(ns):
    """SIGKILLs whatever still runs in ns (only processes our runs started
    there), then deletes it."""
    pids = ip("netns", "pids", ns, check=False).stdout.split()
    for p in pids:
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    ip("netns", "del", ns, check=False)
    return [int(p) for p in pids if p.isdigit()]


def _our_namespaces():
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if NS_RE.match(line)]


def remove_stale_namespaces():
    """Deletes namespaces left by an earlier run that crashed (its pid is gone)."""
    for ns in _our_namespaces():
        pid = int(NS_RE.match(ns).group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            _kill_and_delete(ns)


class Network:
    """One namespace per host plus a switch namespace holding a bridge; each
    host has eth0 (10.A.B.N/24) whose peer sw-<host> is a port of the bridge.
    Pulling a host's cable = setting its bridge port down."""

    def __init__(self):
        token = secrets.token_hex(2)
        self.prefix = f"{NS_PREFIX}{os.getpid()}x{token}-"
        self.subnet = (random.randint(200, 250), random.randint(0, 255))
        self.switch = self.prefix + "sw"
        self.created = []

    def ns(self, host):
        return self.prefix + host

    def addr(self, host):
        a, b = self.subnet
        return f"10.{a}.{b}.{HOST_NUMBER[host]}"

    def port(self, host):
        return f"sw-{host}"

    def exec_argv(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def create(self):
        try:
            ip("netns", "add", self.switch)
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from None
        self.created.append(self.switch)
        try:
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            ip("-n", self.switch, "link", "set", "lo", "up")
            for host in HOSTS:
                ns = self.ns(host)
                ip("netns", "add", ns)
                self.created.append(ns)
                ip("-n", self.switch, "link", "add", self.port(host), "type", "veth",
                   "peer", "name", "eth0", "netns", ns)
                ip("-n", self.switch, "link", "set", self.port(host), "master", "br0")
                ip("-n", self.switch, "link", "set", self.port(host), "up")
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from None

    def cut(self, host):
        ip("-n", self.switch, "link", "set", self.port(host), "down")

    def restore(self, host):
        ip("-n", self.switch, "link", "set", self.port(host), "up")

    def destroy(self):
        """Deletes every namespace we made; returns the pids that were still
        running in them (killed)."""
        leftovers = []
        for ns in reversed(self.created):
            leftovers += _kill_and_delete(ns)
        self.created.clear()
        return leftovers


class Hosts:
    """The processes of this test (conftest's report hook attaches the logs
    of .procs to a failed test's report)."""

    def __init__(self, net, workdir):
        self.net = net
        self.dir = Path(workdir)
        self.procs = []
        self.env = dict(os.environ)
        for key in ("ZMQ_BROKER_URL", "ZMQ_EVENTS_URL", "RESULT_BACKEND"):
            self.env.pop(key, None)
        self.broker_url = f"tcp://{net.addr('broker')}:{BROKER_PORT}"
        self.events_url = f"tcp://{net.addr('broker')}:{EVENTS_PORT}"
        self.backend_url = f"redis://{net.addr('redis')}:{REDIS_PORT}/1"

    def start(self, host, name, argv, logfile=None, env=None):
        proc = Proc(name, self.net.exec_argv(host, argv), self.dir, {**self.env, **(env or {})},
                    logfile)
        self.procs.append(proc)
        return proc

    def start_redis(self):
        d = self.dir / "redis"
        d.mkdir()
        return self.start("redis", "redis", [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port", str(REDIS_PORT), "--bind", self.net.addr("redis"),
            "--protected-mode", "no", "--save", "", "--appendonly", "no",
            "--dir", str(d), "--logfile", str(d / "redis.log"), "--daemonize", "no",
        ], d / "redis.log")

    def start_broker(self, keys=None, label="broker"):
        """zmqbroker on the bridge: with CURVE when keys (conftest.CurveKeys)
        are given, else in the clear, which a non-loopback bind allows only
        with --insecure."""
        log = self.dir / f"{label}.log"
        argv = [
            binary("zmqbroker"),
            "--bind", self.broker_url, "--events-bind", self.events_url,
            "--data-dir", str(self.dir / f"{label}-data"),
            "--heartbeat-ms", str(HEARTBEAT_MS), "--liveness", str(LIVENESS),
            "--loglevel", LOGLEVEL, "--logfile", str(log),
        ]
        if keys is None:
            argv.append("--insecure")
        return self.start("broker", label, argv, log,
                          env=keys.broker_env() if keys is not None else None)

    def start_worker(self, host, name, env=None, label=None):
        label = label or host
        log = self.dir / f"{label}.log"
        return self.start(host, label, [
            binary("zmqworker"), "-b", self.broker_url, "--result-backend", self.backend_url,
            "-Q", "default", "-c", str(CONCURRENCY), "--prefetch-multiplier", "1",
            "-n", name, "--loglevel", LOGLEVEL, "--logfile", str(log),
        ], log, env=env)

    def zmqctl(self, *args, timeout=30, env=None):
        """zmqctl --json ARGS from the client's namespace; returns (rc, data, proc)."""
        argv = self.net.exec_argv("client", [
            binary("zmqctl"), "-b", self.broker_url, "--result-backend", self.backend_url,
            "--json", *[str(a) for a in args]])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL)
        assert not SANITIZER_PATTERNS.search(proc.stderr), proc.stderr
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, data, proc

    def stop_all(self):
        """Workers first (warm shutdown), then the broker, then Redis; returns
        the problems (unclean exits, sanitizer reports)."""
        def rank(p):  # workers, then brokers, then Redis
            return (0 if p.name.startswith("w") else 1 if p.name.startswith("broker")
                    else 2 if p.name.startswith("redis") else 3)

        procs = sorted(self.procs, key=rank)
        for p in procs:
            if p.name.startswith("w") and p.alive():
                with contextlib.suppress(ProcessLookupError):
                    p.popen.send_signal(signal.SIGTERM)
        problems = []
        for p in procs:
            p.stop()
            problems += p.problems
            rep = p.sanitizer_report()
            if rep:
                problems.append(f"sanitizer report in {p.name}:\n{rep}")
        return problems


def online_names(client):
    return {e["name"] for e in client.control("workers", timeout=2) if e.get("online", True)}


def workers_of(events, type_, ids):
    """{id: [worker, ...]} of the type_ events of ids, in arrival order."""
    out = {i: [] for i in ids}
    for e in events.snapshot(type_):
        if e.get("id") in out:
            out[e["id"]].append(e.get("worker"))
    return out


@pytest.fixture
def network(request):
    if os.geteuid() != 0 or not shutil.which("ip"):
        why = ("needs root" if os.geteuid() != 0 else "needs iproute2's `ip`") + \
              " to make network namespaces"
        if REQUIRE:
            pytest.fail(why + " (ZT_REQUIRE_NETNS=1)", pytrace=False)
        pytest.skip(why)
    remove_stale_namespaces()
    net = Network()
    try:
        net.create()
    except NetnsUnavailable as exc:
        net.destroy()
        why = f"this kernel/container refuses network namespaces, veth or bridges: {exc}"
        if REQUIRE:
            pytest.fail(why + " (ZT_REQUIRE_NETNS=1)", pytrace=False)
        pytest.skip(why)
    yield net
    leftovers = net.destroy()
    assert not leftovers, f"processes still running in the test's namespaces: {leftovers}"


@pytest.mark.slow
@pytest.mark.zt_timeout(100)
def test_workers_on_separate_hosts_survive_a_cable_pull(request, network, tmp_path):
    net = network
    hosts = Hosts(net, tmp_path)
    request.node._zt_cluster = hosts  # conftest attaches these logs to a failure report
    clients, streams, pubsubs = [], [], []
    problems = []
    try:
        with inside(net.ns("client")):
            try:
                run_scenario(net, hosts, clients, streams, pubsubs)
            finally:
                for ev in streams:
                    ev.close()
                for c in clients:
                    with contextlib.suppress(Exception):
                        c.close()
                for ps in pubsubs:
                    with contextlib.suppress(Exception):
                        ps.close()
    finally:
        problems = hosts.stop_all()
    assert not problems, "processes did not end cleanly:\n" + "\n".join(problems)


def run_scenario(net, hosts, clients, streams, pubsubs):
    # --- the hosts --------------------------------------------------------
    redis_proc = hosts.start_redis()
    rds = redis_py.Redis(host=net.addr("redis"), port=REDIS_PORT, db=1,
                         decode_responses=True, socket_timeout=5, socket_connect_timeout=2)

    def redis_up():
        assert redis_proc.alive(), f"redis-server exited:\n{redis_proc.log_text()}"
        try:
            return rds.ping()
        except redis_py.exceptions.ConnectionError:
            return False

    wait_until(redis_up, 15, interval=0.05, message="redis-server to answer across the bridge")
    # Every state any worker writes, in order (PROTOCOL.md §9: SETEX + PUBLISH).
    ps = rds.pubsub(ignore_subscribe_messages=True)
    pubsubs.append(ps)
    ps.psubscribe("celery-task-meta-*")
    published = []  # (id, meta) in publication order

    def drain_published(wait=0.0):
        deadline = time.monotonic() + wait
        while True:
            msg = ps.get_message(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            if msg is None:
                if time.monotonic() >= deadline:
                    return
                continue
            if msg.get("type") == "pmessage":
                tid = msg["channel"][len("celery-task-meta-"):]
                published.append((tid, json.loads(msg["data"])))

    broker_proc = hosts.start_broker()
    assert ztp.wait_ping(hosts.broker_url, timeout=20, is_alive=broker_proc.alive), \
        f"broker did not answer ping across the bridge:\n{broker_proc.log_text()}"
    # in the clear on a non-loopback address only because we said so, and it says so
    assert f"--insecure: {hosts.broker_url} is served WITHOUT encryption" in \
        Path(hosts.dir / "broker.log").read_text(errors="replace")
    client = ztp.Client(hosts.broker_url, timeout=5)
    clients.append(client)
    events = Events(hosts.events_url)
    streams.append(events)
    events.sync(client)

    names = {"w1": "w1@host-a", "w2": "w2@host-b"}
    w1 = hosts.start_worker("w1", names["w1"])
    w2 = hosts.start_worker("w2", names["w2"])

    def both_online():
        for w in (w1, w2):
            assert w.alive(), f"{w.name} exited:\n{w.log_text()}"
        return set(names.values()) <= online_names(client)

    wait_until(both_online, 20, interval=0.05, message="both workers online at the broker")

    expected = {}  # id -> result
    # --- 1. tasks flow over TCP between the hosts --------------------------
    # The real client program, from the client's host, waiting on Redis there.
    for i in range(2):
        rc, data, proc = hosts.zmqctl("send", "builtin.add", "--args", json.dumps([i, 100]),
                                      "--wait", "20")
        assert rc == 0 and data and data["status"] == "SUCCESS" and data["result"] == i + 100, \
            proc
        expected[data["id"]] = i + 100
    msgs = [ztp.task_message("builtin.add", [i, i]) for i in range(30)]
    for m, reply in zip(msgs, client.submit_many(msgs)):
        assert reply.accepted, reply
        expected[m["id"]] = 2 * m["args"][0]
    flow_ids = list(expected)
    # Finished at the broker too (its DONE processed, the credit back).
    done = events.wait_count("task-succeeded", len(flow_ids), ids=flow_ids, timeout=30)
    served = {e["worker"] for e in done}
    assert served == set(names.values()), f"tasks not spread over both hosts: {served}"

    # --- 2. w1 holds running tasks when its cable is pulled ---------------
    sleeps = [ztp.task_message("builtin.sleep", [SLEEP_S]) for _ in range(2 * CONCURRENCY)]
    for m, reply in zip(sleeps, client.submit_many(sleeps)):
        assert reply.accepted, reply
        expected[m["id"]] = SLEEP_S
    sleep_ids = [m["id"] for m in sleeps]
    starts = events.wait_count("task-started", len(sleep_ids), ids=sleep_ids, timeout=15)
    held = [e["id"] for e in starts if e["worker"] == names["w1"]]
    assert len(held) == CONCURRENCY, f"w1 should run {CONCURRENCY} of the sleeps: {starts}"
    active = {e["id"]: e["worker"] for e in client.control("active")}
    assert all(active.get(i) == names["w1"] for i in held), active

    net.cut("w1")
    t_cut = time.monotonic()
    cut_wall = time.time()
    offline = events.wait_for(
        lambda e: e["type"] == "worker-offline" and e.get("worker") == names["w1"],
        timeout=DEAD_AFTER + 10, what="w1 declared dead")
    detected = offline["_rx"] - cut_wall
    assert offline["reason"] == "heartbeat-lost", offline
    # Its last message may predate the cut by up to one heartbeat interval.
    assert detected >= DEAD_AFTER - HEARTBEAT_MS / 1000 - 0.1, \
        f"w1 declared dead only {detected:.2f} s after the cut"
    # Its tasks are redelivered to, and run by, the other host.
    def redelivered_to_w2():
        seen = workers_of(events, "task-started", held)
        return all(names["w2"] in seen[i] for i in held)

    wait_until(redelivered_to_w2, 3 * SLEEP_S + 10, interval=0.05,
               message="w1's tasks to start on w2")
    assert names["w1"] not in online_names(client)
    # Keep the cable out until w1's own copies have finished (they ran on:
    # nobody told w1's pool anything), so their results and DONEs are late.
    while time.monotonic() < t_cut + max(SLEEP_S + 1.0, 3 * DEAD_AFTER):
        assert w1.alive(), f"w1 died while cut off:\n{w1.log_text()}"
        time.sleep(0.05)
    assert w1.alive() and w2.alive()
    cut_for = time.monotonic() - t_cut
    net.restore("w1")
    restored_wall = time.time()

    # --- 3. w1 reconnects and serves again ---------------------------------
    events.wait_for(lambda e: e["type"] == "worker-online" and e.get("worker") == names["w1"]
                    and e["_rx"] >= restored_wall,
                    timeout=40, what="w1 back online after the cable returns")
    rc, data, proc = hosts.zmqctl("workers")
    assert rc == 0, proc
    listed = {e["name"]: e for e in data}
    assert names["w1"] in listed and listed[names["w1"]].get("online", True), data
    after = [ztp.task_message("builtin.sleep", [0.3]) for _ in range(3 * CONCURRENCY)]
    for m, reply in zip(after, client.submit_many(after)):
        assert reply.accepted, reply
        expected[m["id"]] = 0.3
    after_ids = [m["id"] for m in after]
    done = events.wait_count("task-succeeded", len(after_ids), ids=after_ids, timeout=30)
    by_w1 = [e["id"] for e in done if e["worker"] == names["w1"]]
    assert by_w1, f"w1 served none of the tasks sent after it reconnected: {done}"

    # --- 4. nothing lost, nothing duplicated -------------------------------
    ids = list(expected)
    wait_until(lambda: all(rds.mget([f"celery-task-meta-{i}" for i in ids])), 30,
               interval=0.05, message="a result for every task")
    # Quiesce: a warm shutdown finishes what runs and flushes every result.
    for w in (w1, w2):
        w.popen.send_signal(signal.SIGTERM)
    for w in (w1, w2):
        assert w.stop() == 0, w.problems
    drain_published(wait=0.5)
    stats = client.control("stats")

    keys = set(rds.keys("celery-task-meta-*"))
    assert keys == {f"celery-task-meta-{i}" for i in ids}, \
        f"missing {sorted(set(f'celery-task-meta-{i}' for i in ids) - keys)[:5]}, " \
        f"unexpected {sorted(keys - set(f'celery-task-meta-{i}' for i in ids))[:5]}"
    for i, raw in zip(ids, rds.mget([f"celery-task-meta-{i}" for i in ids])):
        meta = json.loads(raw)
        assert meta["status"] == "SUCCESS" and meta["result"] == expected[i], (i, meta)
        assert meta["task_id"] == i, meta

    finals = {i: [] for i in ids}
    last_state = {}
    for tid, meta in published:
        if tid in finals:
            last_state[tid] = meta["status"]
            if meta["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
                finals[tid].append((meta["status"], meta["result"]))
    for i in ids:
        assert finals[i], f"{i}: no final state was ever published"
        assert all(f == ("SUCCESS", expected[i]) for f in finals[i]), (i, finals[i])
        assert last_state[i] == "SUCCESS", f"{i}: a later write left it {last_state[i]}"
        if i not in held:
            assert len(finals[i]) == 1, f"{i} (not held by w1) written final {len(finals[i])}x"
        else:
            assert len(finals[i]) <= 2, f"{i} written final {len(finals[i])}x (two runs at most)"

    started = workers_of(events, "task-started", ids)
    succeeded = workers_of(events, "task-succeeded", ids)
    for i in ids:
        assert len(succeeded[i]) == 1, f"{i}: broker reported {len(succeeded[i])} outcomes"
        if i in held:
            assert started[i][:2] == [names["w1"], names["w2"]], (i, started[i])
        else:
            assert len(started[i]) == 1, (i, started[i])
    assert stats["succeeded"] == len(ids), stats
    assert stats["redelivered"] == len(held), stats

    # Which of the two DONEs the broker took for each redelivered task.
    blog = Path(hosts.dir / "broker.log").read_text(errors="replace")
    late_accepted = [i for i in held if re.search(rf"task {i} finished by {names['w1']}", blog)]
    reruns = sum(len(finals[i]) - 1 for i in held)
    print(f"\nhosts: subnet 10.{net.subnet[0]}.{net.subnet[1]}.0/24; {len(ids)} tasks; "
          f"w1 dead {detected:.2f} s after the cut, cut for {cut_for:.2f} s; "
          f"{len(held)} redelivered, {reruns} ran twice "
          f"(w1's late DONE accepted for {len(late_accepted)}); w1 served {len(by_w1)} after")


# ---------------------------------------------------------------------------
# Issue 9: the same hosts with CURVE, and what a packet capture sees


class Capture:
    """tshark on one host's eth0, capturing the broker's two ports into a
    pcap file; stop() ends it (SIGINT: tshark finishes the file)."""

    def __init__(self, net, host, path):
        self.path = Path(path)
        self.log = self.path.with_suffix(".tshark.log")
        self._out = open(self.log, "wb")
        self.popen = subprocess.Popen(
            net.exec_argv(host, ["tshark", "-i", "eth0", "-f",
                                 f"tcp port {BROKER_PORT} or tcp port {EVENTS_PORT}",
                                 "-w", str(self.path)]),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
            start_new_session=True)

        def started():
            assert self.popen.poll() is None, f"tshark exited:\n{self.log.read_text()}"
            return "Capture started" in self.log.read_text(errors="replace")

        wait_until(started, 30, interval=0.05, message="tshark to start capturing")

    def settle(self, quiet=1.5, timeout=20):
        """Waits until the file has stopped growing for quiet seconds: the
        kernel hands packets to dumpcap in blocks, at least once a second,
        and what has not been handed over when the capture stops is lost.
        Call it once the traffic of interest is over (its peers stopped)."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size != last:
                last, since = size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.path.name} kept growing for {timeout} s")

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._out.close()

    def frames(self, display_filter):
        """How many captured frames match a tshark display filter."""
        p = subprocess.run(["tshark", "-r", str(self.path), "-Y", display_filter, "-T", "fields",
                            "-e", "frame.number"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        return len(p.stdout.split())

    def payload_bytes(self):
        p = subprocess.run(["tshark", "-r", str(self.path), "-Y", "tcp.len > 0", "-T", "fields",
                            "-e", "tcp.len"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        return sum(int(x) for x in p.stdout.split())


def log_has(path, pattern, timeout=10):
    rx = re.compile(pattern)

    def found():
        try:
            return rx.search(Path(path).read_text(errors="replace"))
        except FileNotFoundError:
            return None

    return wait_until(found, timeout, interval=0.05, message=f"/{pattern}/ in {Path(path).name}")


@pytest.mark.slow
@pytest.mark.zt_timeout(150)
def test_curve_across_hosts_and_on_the_wire(request, network, tmp_path):
    """The broker on its host, workers and the client on theirs, over the
    bridge. In the clear (--insecure) a capture on the broker's link shows
    the task name and arguments; with CURVE it shows neither, while tasks
    flow; a worker with an unknown key is refused by zauth (and logged); a
    client key cannot register as a worker; an events subscription without
    a key, or with an unknown one, receives nothing; and a worker key
    removed from the allowed folder plus SIGHUP cuts that worker off."""
    from conftest import CurveKeys  # noqa: PLC0415 - only this test needs it

    net = network
    hosts = Hosts(net, tmp_path)
    request.node._zt_cluster = hosts
    keys = CurveKeys(tmp_path / "keys")
    for name, role in (("w1", "worker"), ("alice", "client"), ("root", "admin")):
        keys.add(name, role)
    keys.add("stranger", "worker", allow=False)
    captures, closers = [], []
    try:
        with inside(net.ns("client")):
            try:
                run_curve_scenario(net, hosts, keys, captures, closers)
            finally:
                for c in closers:
                    with contextlib.suppress(Exception):
                        c.close()
    finally:
        for cap in captures:
            cap.stop()
        problems = hosts.stop_all()
    assert not problems, "processes did not end cleanly:\n" + "\n".join(problems)


def run_curve_scenario(net, hosts, keys, captures, closers):
    redis_proc = hosts.start_redis()
    rds = redis_py.Redis(host=net.addr("redis"), port=REDIS_PORT, db=1, socket_timeout=5,
                         socket_connect_timeout=2)
    closers.append(rds)
    wait_until(lambda: redis_proc.alive() and _ping(rds), 15, interval=0.05,
               message="redis-server across the bridge")
    canary = "zt-canary-" + secrets.token_hex(6)

    # --- 1. in the clear: the capture sees names and arguments --------------
    plain_cap = Capture(net, "broker", hosts.dir / "plain.pcap")
    captures.append(plain_cap)
    plain_broker = hosts.start_broker(label="broker-plain")
    assert ztp.wait_ping(hosts.broker_url, timeout=20, is_alive=plain_broker.alive), \
        plain_broker.log_text()
    w_plain = hosts.start_worker("w1", "w1@plain", label="w1-plain")
    rc, data, proc = hosts.zmqctl("send", "builtin.echo", "--args", json.dumps([canary]),
                                  "--wait", "30")
    assert rc == 0 and data["status"] == "SUCCESS", proc
    w_plain.popen.send_signal(signal.SIGTERM)
    assert w_plain.stop() == 0, w_plain.problems
    assert plain_broker.stop() == 0, plain_broker.problems
    plain_cap.settle()
    plain_cap.stop()
    assert plain_cap.frames('frame contains "builtin.echo"') > 0, "capture saw no plaintext"
    assert plain_cap.frames(f'frame contains "{canary}"') > 0
    assert canary.encode() in plain_cap.path.read_bytes()

    # --- 2. CURVE ------------------------------------------------------------
    cap = Capture(net, "broker", hosts.dir / "curve.pcap")
    captures.append(cap)
    broker = hosts.start_broker(keys=keys)
    blog = hosts.dir / "broker.log"
    root = ztp.Client(hosts.broker_url, timeout=5, curve=keys.curve("root"))
    closers.append(root)
    assert ztp.wait_ping(hosts.broker_url, timeout=20, is_alive=broker.alive,
                         curve=keys.curve("root")), broker.log_text()
    events = Events(hosts.events_url, curve=keys.curve("alice"))
    stolen = Events(hosts.events_url)  # no key at all
    stranger_ev = Events(hosts.events_url, curve=keys.curve("stranger"))
    closers += [events, stolen, stranger_ev]
    events.sync(root)

    w1 = hosts.start_worker("w1", "w1@host-a", env=keys.client_env("w1"))
    wait_until(lambda: "w1@host-a" in online_names(root), 20, interval=0.05,
               message="w1 online with its worker key")
    # tasks flow, from the real client with a client key
    rc, data, proc = hosts.zmqctl("send", "builtin.echo", "--args", json.dumps([canary]),
                                  "--wait", "30", env=keys.client_env("alice"))
    assert rc == 0 and data["status"] == "SUCCESS" and data["result"]["args"] == [canary], proc
    ev = events.wait_for(lambda e: e["type"] == "task-succeeded" and e["id"] == data["id"],
                         timeout=10, what="task-succeeded")
    assert ev["name"] == "builtin.echo" and ev["worker"] == "w1@host-a"

    # a worker with an unknown key: zauth refuses it, the broker says so
    w2 = hosts.start_worker("w2", "w2@host-b", env=keys.client_env("stranger"))
    log_has(blog, r"refused a connection on the clients endpoint \S+: its key is not in "
                  r"curve_allowed_dir", timeout=20)
    time.sleep(0.5)
    assert "w2@host-b" not in online_names(root) and w2.alive()

    # a client key cannot register as a worker
    alice = ztp.Client(hosts.broker_url, timeout=5, curve=keys.curve("alice"))
    closers.append(alice)
    alice.send(ztp.HELLO, {"name": "sneaky@client", "queues": ["default"], "credit": 1})
    reply = alice.recv()
    assert reply.is_error and reply.code == "forbidden", reply
    log_has(blog, r"forbidden: key 'alice' has role client; registering as a worker")

    # stolen events subscriptions hear nothing of all this
    ids = [root.submit_ok("builtin.noop") for _ in range(5)]
    events.wait_count("task-succeeded", 5, ids=ids, timeout=15)
    time.sleep(0.3)
    assert stolen.snapshot() == [] and stranger_ev.snapshot() == []
    assert len(events.snapshot()) > 10

    # revoking w1's key (remove, SIGHUP) cuts it off
    keys.revoke("w1")
    broker.popen.send_signal(signal.SIGHUP)
    log_has(blog, r"worker w1@host-a cut off: its key was withdrawn")
    assert "w1@host-a" not in online_names(root)
    tid = root.submit_ok("builtin.noop")
    time.sleep(1.0)  # w1 would have taken it at once
    assert root.control("queues")[0]["ready"] >= 1
    assert rds.get(f"celery-task-meta-{tid}") is None
    log_has(hosts.dir / "w1.log", "the broker refuses this worker's key")

    # --- 3. the wire ----------------------------------------------------------
    for c in (events, stolen, stranger_ev, alice, root):
        c.close()
    for w in (w1, w2):
        w.popen.send_signal(signal.SIGTERM)
    for p in (w1, w2):
        assert p.stop() == 0, p.problems
    assert broker.stop() == 0, broker.problems
    cap.settle()
    cap.stop()
    assert cap.payload_bytes() > 5000, "the CURVE capture caught too little to mean anything"
    assert cap.frames(f"tcp.port == {BROKER_PORT} && tcp.len > 0") > 20
    assert cap.frames(f"tcp.port == {EVENTS_PORT} && tcp.len > 0") > 5
    assert cap.frames('frame contains "builtin.echo"') == 0
    assert cap.frames('frame contains "builtin.noop"') == 0
    assert cap.frames(f'frame contains "{canary}"') == 0
    raw = cap.path.read_bytes()
    assert canary.encode() not in raw and b"builtin." not in raw and b"task-succeeded" not in raw
    print(f"\ncurve on the wire: plain capture {plain_cap.payload_bytes()} payload bytes with the "
          f"name in clear; CURVE capture {cap.payload_bytes()} payload bytes, no name")


def _ping(rds):
    try:
        return rds.ping()
    except redis_py.exceptions.ConnectionError:
        return False
