"""zmqmon (issue 8) against a live cluster: the real program runs inside a
private tmux server (its own socket, a fixed 160x48 window), is driven with
`tmux send-keys` and read with `tmux capture-pane -p`. Checked: workers
appear; a running builtin.progress task shows a bar that moves; a failed
task's detail shows its args, error and events; revoke (terminate) and purge
act on the broker; a worker can be shut down; the broker going away is shown
and survived; a resize is redrawn; `--once --json` matches what the broker
reports through zmqctl. Every wait is bounded."""

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import SANITIZER_PATTERNS, binary, wait_until

COLS, ROWS = 160, 48


class Screen:
    """zmqmon in a tmux server of its own. stderr goes to a file (sanitizer
    reports); the exit status is written when it ends."""

    def __init__(self, cluster, *args, env=None):
        tmux = shutil.which("tmux")
        if not tmux:
            pytest.fail("tmux is not installed (tools/packages.txt lists it; run "
                        "tools/install-deps)", pytrace=False)
        self.tmux = tmux
        self.cluster = cluster
        self.socket = f"zt-mon-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.errfile = Path(cluster.dir) / f"{self.socket}.err"
        self.rcfile = Path(cluster.dir) / f"{self.socket}.rc"
        b = cluster.broker
        argv = [binary("zmqmon"), "-b", b.endpoint, "-e", b.events_endpoint,
                "--result-backend", cluster.backend_url,
                "--logfile", str(Path(cluster.dir) / "zmqmon.log"), "--loglevel", "info",
                *args]
        script = (f"exec 2>{shlex.quote(str(self.errfile))}; {shlex.join(argv)}; "
                  f"echo $? > {shlex.quote(str(self.rcfile))}")
        env = cluster.env(env)
        env.pop("TMUX", None)
        env["TERM"] = "xterm-256color"
        self._run("-f", "/dev/null", "new-session", "-d", "-s", "mon", "-x", str(COLS),
                  "-y", str(ROWS), "sh", "-c", script, env=env)
        self.closed = False

    def _run(self, *args, env=None, check=True):
        p = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True,
                           timeout=10, env=env, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {p.stderr}")
        return p

    def capture(self):
        return self._run("capture-pane", "-p", "-t", "mon").stdout

    def keys(self, *keys):
        """tmux key names (Enter, Escape, Down...) or single characters."""
        self._run("send-keys", "-t", "mon", *keys)

    def type(self, text):
        self._run("send-keys", "-t", "mon", "-l", text)

    def wait_for(self, what, timeout=15.0):
        """Waits until the screen contains the text what (or what(screen) is
        truthy); returns the screen."""
        last = [""]

        def seen():
            last[0] = self.capture()
            return what(last[0]) if callable(what) else what in last[0]
        try:
            wait_until(seen, timeout, interval=0.1, message=f"screen to show {what!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; screen:\n{last[0]}") from None
        return last[0]

    def line_with(self, text, screen=None):
        for line in (screen or self.capture()).splitlines():
            if text in line:
                return line
        return None

    def resize(self, cols, rows):
        self._run("resize-window", "-t", "mon", "-x", str(cols), "-y", str(rows))

    def quit(self, timeout=10.0):
        """q, then the program must exit 0 with no sanitizer report."""
        self.keys("q")
        wait_until(self.rcfile.exists, timeout, message="zmqmon to exit after q")
        self.close()
        rc = self.rcfile.read_text().strip()
        err = self.errfile.read_text(errors="replace") if self.errfile.exists() else ""
        assert rc == "0", f"zmqmon exited {rc}; stderr:\n{err}"
        m = SANITIZER_PATTERNS.search(err)
        assert not m, f"sanitizer report from zmqmon:\n{err[max(0, m.start() - 200):]}"

    def close(self):
        if not self.closed:
            self._run("kill-server", check=False)
            self.closed = True


@pytest.fixture
def screen_factory(cluster):
    screens = []

    def make(*args, env=None):
        s = Screen(cluster, *args, env=env)
        screens.append(s)
        return s

    yield make
    for s in screens:
        s.close()


@pytest.fixture
def mon_cluster(cluster):
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    cluster.worker = cluster.start_worker(queues=["default", "mon"], concurrency=2,
                                          name="monw1@zt")
    return cluster


def send(cluster, *args):
    res = cluster.zmqctl("send", *args)
    assert res.rc == 0, res
    return res.data["id"]


def test_workers_appear_and_progress_moves(mon_cluster, screen_factory):
    c = mon_cluster
    s = screen_factory()
    screen = s.wait_for("* connected")
    s.wait_for("1 online")
    s.keys("2")
    screen = s.wait_for("monw1@zt")
    line = s.line_with("monw1@zt", screen)
    assert "online" in line and "default,mon" in line, screen
    s.keys("?")
    s.wait_for("zmqmon keys")
    s.keys("Escape")  # any key closes the help

    tid = send(c, "builtin.progress", "--args", "[40, 0.1]")  # 4 s, 10 reports a second
    s.keys("3")

    def bar(screen):
        line = s.line_with(tid, screen)
        return line[line.index("["):] if line and "STARTED" in line and "[" in line else None

    first = bar(s.wait_for(bar))
    deadline = time.monotonic() + 3
    second = first
    while second == first and time.monotonic() < deadline:
        time.sleep(0.3)
        second = bar(s.capture()) or second
    assert second != first, f"the progress bar did not move: {first!r}"
    pct = [int(re.search(r"\]\s*(\d+)%", b).group(1)) for b in (first, second)]
    assert pct[1] > pct[0], (first, second)
    # the dashboard lists it as running, with its bar
    s.keys("1")
    screen = s.wait_for(tid)
    assert "builtin.progress" in s.line_with(tid, screen)
    assert c.wait_result(tid, timeout=20)["status"] == "SUCCESS"
    s.keys("3")
    s.wait_for(lambda sc: "SUCCESS" in (s.line_with(tid, sc) or ""))
    s.quit()


def test_failed_task_detail_and_retry(mon_cluster, screen_factory):
    c = mon_cluster
    s = screen_factory()
    s.wait_for("* connected")
    marker = "kaboom-" + uuid.uuid4().hex[:8]
    tid = send(c, "builtin.fail", "--args", json.dumps([marker]), "--max-retries", "0")
    assert c.wait_result(tid)["status"] == "FAILURE"
    s.keys("3")
    s.wait_for(lambda sc: "FAILURE" in (s.line_with(tid, sc) or ""))
    s.keys("/")
    s.wait_for("task id (or its beginning):")
    s.type(tid[:13])
    s.keys("Enter")
    screen = s.wait_for(f"Task {tid}")
    assert "FAILURE" in s.line_with(f"Task {tid}", screen)
    assert f'["{marker}"]' in s.line_with("args", screen), screen  # result_extended
    assert marker in s.line_with("error", screen), screen
    for event in ("task-received", "task-started", "task-failed"):
        assert event in screen, screen
    assert marker in s.line_with("task-failed", screen)

    # retry: the same task and args under a new id
    s.keys("R")
    s.wait_for("again with the same args? [y/N]")
    s.keys("y")
    screen = s.wait_for("sent again as ")
    new_id = screen.split("sent again as ")[1].split()[0]
    assert new_id != tid
    meta = c.wait_result(new_id, states=("RETRY", "FAILURE"))
    assert meta["name"] == "builtin.fail" and meta["args"] == [marker], meta
    s.quit()


def test_revoke_terminate_and_purge(mon_cluster, screen_factory):
    c = mon_cluster
    s = screen_factory()
    s.wait_for("* connected")
    ev = c.events()
    ev.sync(c.client())
    tid = send(c, "builtin.sleep", "--args", "[60]")
    ev.wait_for(lambda e: e.get("type") == "task-started" and e.get("id") == tid)
    s.keys("3", "/")
    s.type(tid)
    s.keys("Enter")
    s.wait_for(lambda sc: f"Task {tid}" in sc and "STARTED" in sc)
    s.keys("T")
    s.wait_for("and terminate its process (SIGTERM)? [y/N]")
    s.keys("y")
    s.wait_for("was running, now revoked")
    meta = c.wait_result(tid, timeout=15)
    assert meta["status"] == "REVOKED", meta
    s.wait_for(lambda sc: "REVOKED" in (s.line_with(f"Task {tid}", sc) or ""))

    # purge: five tasks wait in a queue nobody serves ("aaa-" sorts it first)
    queue = "aaa-idle"
    ids = [send(c, "builtin.noop", "-Q", queue) for _ in range(4)]
    ids.append(send(c, "builtin.add", "-Q", queue, "--args", "[7, 35]", "--priority", "6"))
    # a queued task's args come from the broker, which holds it (CONTROL task)
    s.keys("3")
    s.wait_for(ids[-1])  # its task-received has arrived
    s.keys("/")
    s.type(ids[-1])
    s.keys("Enter")
    screen = s.wait_for("from the broker, which holds the task: queued")
    assert "[7,35]" in s.line_with("args", screen), screen
    assert "RECEIVED" in s.line_with(f"Task {ids[-1]}", screen), screen
    s.keys("Escape")
    s.keys("4")
    s.wait_for(lambda sc: (s.line_with(queue, sc) or "").split()[1:2] == ["5"])
    s.keys("g", "p")
    s.wait_for(f"Purge queue {queue}: drop its 5 ready task(s)? [y/N]")
    s.keys("y")
    s.wait_for(f"purge queue {queue}: 5 ready task(s) removed")
    queues = {q["name"]: q for q in c.zmqctl("queues").data}
    assert queues[queue]["ready"] == 0, queues
    # they end REVOKED once a worker serves the queue (tombstones)
    c.start_worker(queues=[queue], concurrency=1, name="monw2@zt")
    metas = c.wait_results(ids)
    assert {m["status"] for m in metas.values()} == {"REVOKED"}, metas
    s.quit()


def test_worker_shutdown_broker_loss_and_resize(mon_cluster, screen_factory):
    c = mon_cluster
    extra = c.start_worker(queues=["other"], concurrency=1, name="monw9@zt")
    s = screen_factory("--view", "workers")
    s.wait_for(lambda sc: "monw9@zt" in sc and "monw1@zt" in sc and "* connected" in sc)
    # workers sort by name: monw1 first, monw9 second
    s.keys("g", "j", "x")
    s.wait_for("Shut down worker monw9@zt")
    s.keys("y")
    s.wait_for("shutdown monw9@zt: warm shutdown begun")
    assert extra.proc.wait(15) == 0
    s.wait_for(lambda sc: "OFFLINE" in (s.line_with("monw9@zt", sc) or ""))

    # the broker goes away: shown, workers marked offline, then back
    b = c.broker
    b.proc.stop()
    s.wait_for("BROKER UNREACHABLE", timeout=15)
    s.wait_for(lambda sc: "OFFLINE" in (s.line_with("monw1@zt", sc) or ""))
    c.start_broker(heartbeat_ms=200, liveness=3, port=b.port, events_port=b.events_port)
    s.wait_for("* connected", timeout=20)
    s.wait_for(lambda sc: "online" in (s.line_with("monw1@zt", sc) or ""), timeout=20)
    # and events flow again: a task shows up
    s.keys("3")
    tid = send(c, "builtin.add", "--args", "[1, 2]")
    s.wait_for(lambda sc: "SUCCESS" in (s.line_with(tid, sc) or ""))

    # a smaller terminal (SIGWINCH): redrawn at the new size
    s.resize(100, 30)
    screen = s.wait_for(lambda sc: len(sc.splitlines()[0]) <= 100 and "Tasks" in sc)
    assert len(screen.splitlines()) <= 30
    s.resize(COLS, ROWS)
    s.quit()


def _by(items, key="name"):
    return {i[key]: i for i in items}


def test_once_json_matches_the_broker(mon_cluster):
    c = mon_cluster
    # some state: tasks done, tasks waiting in a queue nobody serves, a scheduled one
    for _ in range(3):
        assert c.wait_result(send(c, "builtin.add", "--args", "[2, 2]"))["status"] == "SUCCESS"
    for p in (1, 5, 5):
        send(c, "builtin.noop", "-Q", "waiting", "--priority", str(p))
    send(c, "builtin.noop", "--countdown", "600")
    mon = subprocess.run([binary("zmqmon"), "--once", "--json", "-b", c.broker.endpoint],
                         capture_output=True, text=True, timeout=30, env=c.env(),
                         stdin=subprocess.DEVNULL)
    assert mon.returncode == 0, mon.stderr
    assert not SANITIZER_PATTERNS.search(mon.stderr), mon.stderr
    snap = json.loads(mon.stdout)
    assert set(snap) >= {"broker", "stats", "queues", "workers", "active", "reserved",
                         "scheduled"}
    queues = _by(c.zmqctl("queues").data)
    workers = _by(c.zmqctl("workers").data)
    stats = c.zmqctl("stats").data
    assert snap["broker"]["pong"] is True
    assert snap["broker"]["broker"] == stats["broker"]
    assert set(_by(snap["queues"])) == set(queues)
    for name, q in _by(snap["queues"]).items():
        for key in ("ready", "scheduled", "in_flight", "consumers", "by_priority"):
            assert q[key] == queues[name][key], (name, key, q, queues[name])
    assert _by(snap["queues"])["waiting"]["by_priority"][5] == 2
    assert set(_by(snap["workers"])) == set(workers) == {"monw1@zt"}
    for name, w in _by(snap["workers"]).items():
        for key in ("host", "pid", "queues", "concurrency", "processed", "failed", "online"):
            assert w[key] == workers[name][key], (name, key)
    for key in ("submitted", "accepted", "succeeded", "failed", "queued", "scheduled"):
        assert snap["stats"][key] == stats[key], key
    assert snap["stats"]["succeeded"] >= 3
    assert len(snap["scheduled"]) == 1 and snap["scheduled"][0]["task"] == "builtin.noop"
    # the text form names the same things
    text = subprocess.run([binary("zmqmon"), "--once", "-b", c.broker.endpoint],
                          capture_output=True, text=True, timeout=30, env=c.env(),
                          stdin=subprocess.DEVNULL)
    assert text.returncode == 0, text.stderr
    assert "monw1@zt" in text.stdout and "waiting" in text.stdout, text.stdout


def test_once_without_broker_exits_3(cluster):
    from conftest import free_port
    mon = subprocess.run([binary("zmqmon"), "--once", "--json", "--timeout", "0.5",
                          "-b", f"tcp://127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=30, env=cluster.env(),
                         stdin=subprocess.DEVNULL)
    assert mon.returncode == 3, (mon.returncode, mon.stderr)
    assert "no answer" in mon.stderr or "ping" in mon.stderr
    # the screen refuses to start without a terminal and says what to use instead
    mon = subprocess.run([binary("zmqmon"), "-b", f"tcp://127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=30, env=cluster.env(),
                         stdin=subprocess.DEVNULL)
    assert mon.returncode == 2 and "--once" in mon.stderr, mon.stderr


def test_under_curve_with_a_client_key(cluster, tmp_path, screen_factory):
    """Issue 9's CURVE: zmqmon connects like every client (curve_client_cert,
    curve_broker_key). A `client` key watches; what needs `admin` (revoke,
    a queued task's args) is refused, and zmqmon says so without taking the
    refusal for a broker that went away."""
    from conftest import CurveKeys  # issue 9

    keys = CurveKeys(tmp_path / "keys")
    keys.add("w1", "worker")
    keys.add("root", "admin")
    keys.add("viewer", "client")
    cluster.use_curve(keys, client="root")
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    cluster.start_worker(queues=["default"], concurrency=1, name="curvew@zt",
                         env=keys.client_env("w1"))
    once = subprocess.run([binary("zmqmon"), "--once", "--json"], capture_output=True, text=True,
                          timeout=30, env=cluster.env(), stdin=subprocess.DEVNULL)
    assert once.returncode == 0, once.stderr
    assert [w["name"] for w in json.loads(once.stdout)["workers"]] == ["curvew@zt"]

    s = screen_factory(env=keys.client_env("viewer"))
    s.wait_for(lambda sc: "* connected" in sc and "1 online" in sc)
    tid = send(cluster, "builtin.noop", "-Q", "nobody")
    s.keys("3")
    s.wait_for(tid)
    s.keys("/")
    s.type(tid)
    s.keys("Enter")
    s.wait_for("the broker did not give them: forbidden")
    s.keys("r")
    s.wait_for("[y/N]")
    s.keys("y")
    s.wait_for(f"revoke {tid}: forbidden")
    time.sleep(2.5)  # longer than a request's timeout: still connected
    assert "* connected" in s.capture()
    s.quit()
