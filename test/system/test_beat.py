"""zmqbeat against a real broker, zmqworker and Redis: interval entries fire
on time; two beats send each run exactly once (counted on the worker side);
a killed leader is replaced within its lease; a beat restarted across fire
times sends one catch-up run; the broker keeps last fire times across its own
restart; crontab entries fire (with the test-only clock offset); bad schedule
files are refused with FILE:LINE; a finished task's id is refused again."""

import re
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pytest

import ztp
from conftest import LOGLEVEL, Proc, binary, wait_until

SUCCEEDED = re.compile(r"task succeeded: builtin\.echo\[([0-9a-f-]+)\]")


class Beats:
    """Starts zmqbeat processes for one test and stops them before the
    cluster goes (every beat must exit 0 on SIGTERM)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.procs = []

    def start(self, schedule, name, lease_ms=1500, extra=()):
        c = self.cluster
        logfile = c.dir / f"{name}.log"
        argv = [binary("zmqbeat"), "--schedule", str(schedule), "-n", name,
                "-b", c.broker.endpoint, "--lease-ms", str(lease_ms),
                "--loglevel", LOGLEVEL, "--logfile", str(logfile)] + list(extra)
        proc = Proc(name, argv, c.dir, c.env(), logfile)
        c.procs.append(proc)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for p in self.procs:
            if p.returncode is None:
                p.stop()


@pytest.fixture
def beats(cluster):
    b = Beats(cluster)
    yield b
    b.stop_all()


def schedule_file(cluster, body, name="schedule.yaml"):
    path = cluster.dir / name
    path.write_text(body)
    return path


def runs(worker):
    """Ids of builtin.echo runs the worker finished, in order (with repeats)."""
    try:
        text = worker.proc.logfile.read_text(errors="replace")
    except OSError:
        return []
    return SUCCEEDED.findall(text)


def beat_state(cluster):
    res = cluster.zmqctl("beat")
    assert res.rc == 0, res
    return res.data


def test_two_beats_send_each_interval_run_once(cluster, broker, beats):
    worker = cluster.start_worker()
    sched = schedule_file(cluster, "entries:\n  tick:\n    task: builtin.echo\n"
                                   "    args: [tick]\n    every: 1s\n")
    beats.start(sched, "beat-a")
    beats.start(sched, "beat-b")
    started = time.time()
    wait_until(lambda: len(runs(worker)) >= 5, 15, message="five runs")
    ids = runs(worker)
    elapsed = time.time() - started
    assert len(ids) == len(set(ids)), f"a run was executed twice: {ids}"
    # one a second: five runs take 4-7 s (first fire one period after start)
    assert 4.0 <= elapsed <= 10.0, elapsed  # slow starts under load: bound, not a race
    state = beat_state(cluster)
    assert state["leader"] in ("beat-a", "beat-b")
    (entry,) = state["entries"]
    assert entry["name"] == "tick"
    assert abs(entry["last_fire"] - time.time()) < 2.5
    assert entry["next_fire"] > entry["last_fire"]
    # the standby logged that it stands by, never that it sent
    standby = "beat-b" if state["leader"] == "beat-a" else "beat-a"
    text = (cluster.dir / f"{standby}.log").read_text()
    assert "sent builtin.echo" not in text or "lost the lease" in text


def test_leader_killed_standby_takes_over_within_lease(cluster, broker, beats):
    worker = cluster.start_worker()
    sched = schedule_file(cluster, "entries:\n  tick:\n    task: builtin.echo\n"
                                   "    args: [tick]\n    every: 1s\n")
    procs = {n: beats.start(sched, n, lease_ms=1000) for n in ("beat-a", "beat-b")}
    wait_until(lambda: len(runs(worker)) >= 2, 10, message="two runs")
    leader = beat_state(cluster)["leader"]
    other = "beat-b" if leader == "beat-a" else "beat-a"
    procs[leader].deliberately_killed = True
    procs[leader].popen.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: beat_state(cluster)["leader"] == other, 5, interval=0.1,
               message="the standby to lead")
    assert time.monotonic() - killed < 1.0 + 1.5  # the lease, plus a renewal period
    before = len(runs(worker))
    wait_until(lambda: len(runs(worker)) >= before + 2, 10, message="runs from the new leader")
    ids = runs(worker)
    assert len(ids) == len(set(ids)), f"a run was executed twice: {ids}"


def run_id(entry, fire):
    """The id zmqbeat gives the run of entry fired at fire (PROTOCOL.md §5.3):
    UUIDv5 in the URL namespace of "zmqbeat:ENTRY@ISO8601Z"."""
    iso = datetime.fromtimestamp(int(fire), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"zmqbeat:{entry}@{iso}Z"))


def test_restart_across_fire_times_sends_one_catch_up_run(cluster, broker, beats):
    worker = cluster.start_worker()
    sched = schedule_file(cluster, "entries:\n  tick:\n    task: builtin.echo\n"
                                   "    args: [tick]\n    every: 2s\n")
    first = beats.start(sched, "beat-a")
    wait_until(lambda: len(runs(worker)) >= 1, 10, message="a first run")
    assert first.stop() == 0
    last = beat_state(cluster)["entries"][0]["last_fire"]
    assert runs(worker)[-1] == run_id("tick", last)  # our id scheme, independently
    before = len(runs(worker))
    time.sleep(5.0)  # two fire times (last+2, last+4) pass with no beat up
    assert len(runs(worker)) == before
    beats.start(sched, "beat-b")
    wait_until(lambda: len(runs(worker)) >= before + 2, 8, message="catch-up and next runs")
    # name every run after the restart by its period: last + k * 2 s
    by_id = {run_id("tick", last + 2 * k): k for k in range(1, 12)}
    ks = [by_id.get(i) for i in runs(worker)[before:]]
    assert None not in ks, f"runs that are not fire times of the entry: {ks}"
    catch_up = ks[0]
    assert catch_up >= 2, ks  # the latest missed fire, not the first
    assert ks == list(range(catch_up, catch_up + len(ks))), \
        f"missed periods must collapse into one run, then one run per period: {ks}"


def test_broker_restart_keeps_last_fire_times(cluster, broker, beats):
    worker = cluster.start_worker()
    sched = schedule_file(cluster, "entries:\n  tick:\n    task: builtin.echo\n"
                                   "    args: [tick]\n    every: 1s\n")
    beat = beats.start(sched, "beat-a")
    wait_until(lambda: len(runs(worker)) >= 2, 10, message="two runs")
    assert beat.stop() == 0
    last = beat_state(cluster)["entries"][0]["last_fire"]
    port, events_port = broker.port, broker.events_port
    assert broker.proc.stop() == 0
    cluster.start_broker(port=port, events_port=events_port)
    state = beat_state(cluster)
    assert state["leader"] == ""
    assert [(e["name"], e["last_fire"]) for e in state["entries"]] == [("tick", last)]


def test_crontab_entry_fires_in_its_zone(cluster, broker, beats):
    worker = cluster.start_worker()
    sched = schedule_file(cluster, "timezone: Asia/Tokyo\nentries:\n  morning:\n"
                                   "    task: builtin.echo\n    args: [morning]\n"
                                   "    cron: \"0 8 * * *\"\n")
    # a clock offset that puts the beat 3 s before 08:00 Tokyo (23:00 UTC)
    now = time.time()
    today = datetime.now(timezone.utc).replace(hour=23, minute=0, second=0, microsecond=0)
    target = today.timestamp()
    if target - now < 60:
        target += 86400
    offset = target - 3.0 - now
    beats.start(sched, "beat-a", extra=["--clock-offset", f"{offset:.3f}"])
    wait_until(lambda: len(runs(worker)) >= 1, 10, message="the 08:00 JST run")
    (entry,) = beat_state(cluster)["entries"]
    assert entry["last_fire"] == target
    assert entry["next_fire"] == target + 86400
    time.sleep(1.0)
    assert len(runs(worker)) == 1


@pytest.mark.parametrize("body,line,words", [
    ("entries:\n  a:\n    task: builtin.echo\n    every: 5q\n", 4, "interval '5q'"),
    ("entries:\n  a:\n    task: builtin.echo\n    cron: \"61 * * * *\"\n", 4, "minute field"),
    ("entries:\n  a:\n    task: builtin.echo\n    cron: \"0 8 * * *\"\n    timezone: Mars/X\n",
     4, "unknown time zone"),
    ("entries:\n  a:\n    task: builtin.echo\n", 2, "exactly one of every or cron"),
    ("entries:\n  a:\n    every: 1s\n", 2, "has no task"),
    ("entries:\n  a:\n    task: builtin.echo\n    every: 1s\n    colour: red\n", 5,
     "unknown key 'colour'"),
    ("entries: [1, 2\n", 2, ""),
])
def test_bad_schedule_is_refused_with_file_and_line(tmp_path, body, line, words):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    proc = subprocess.run([binary("zmqbeat"), "--schedule", str(path), "--list"],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2, proc
    assert f"{path}:{line}:" in proc.stderr, proc.stderr
    assert words in proc.stderr, proc.stderr


def test_list_prints_next_fire_times(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("entries:\n  hourly:\n    task: x.y\n    every: 1h\n"
                    "  daily:\n    task: x.z\n    cron: \"30 6 * * *\"\n    timezone: UTC\n")
    proc = subprocess.run([binary("zmqbeat"), "--schedule", str(path), "--list"],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc
    daily = [l for l in proc.stdout.splitlines() if l.startswith("daily")][0]
    assert "30 6 * * * UTC" in daily
    assert len(re.findall(r"T06:30:00", daily)) == 3
    assert "every 1h" in [l for l in proc.stdout.splitlines() if l.startswith("hourly")][0]


def test_finished_id_is_refused_as_duplicate(cluster, broker, client):
    cluster.start_worker()
    tid = client.submit_ok("builtin.add", [1, 2])
    cluster.wait_result(tid)
    wait_until(lambda: cluster.zmqctl("stats").data.get("succeeded", 0) >= 1, 5,
               message="the broker to see the task finish")
    reply = client.submit(ztp.task_message("builtin.add", [1, 2], id=tid))
    assert not reply.accepted and reply.body.get("code") == "duplicate-id", reply
