"""zmqctl: every command with --json, and its exit status (0 ok; 1 rejected,
error, FAILURE or REVOKED; 2 usage; 3 timeout), against a real cluster."""

import json
import time
from datetime import datetime, timezone

import pytest

from conftest import wait_until


@pytest.fixture
def ctl_cluster(cluster):
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    cluster.start_worker(queues=["default", "ctl"], concurrency=2)
    return cluster


def ok(res):
    assert res.rc == 0, res
    assert res.json_error is None, (res.json_error, res)
    return res.data


def test_send_prints_id(ctl_cluster):
    data = ok(ctl_cluster.zmqctl("send", "builtin.add", "--args", "[2, 3]"))
    assert isinstance(data["id"], str) and len(data["id"]) >= 8
    meta = ctl_cluster.wait_result(data["id"])
    assert meta["result"] == 5


def test_send_without_json_prints_the_id(ctl_cluster):
    res = ctl_cluster.zmqctl("send", "builtin.noop", json_out=False)
    assert res.rc == 0, res
    tid = res.out.strip().split()[-1]
    assert ctl_cluster.wait_result(tid)["status"] == "SUCCESS"


def test_send_wait_success(ctl_cluster):
    data = ok(ctl_cluster.zmqctl("send", "builtin.add", "--args", "[40, 2]", "--wait", "10"))
    assert data["status"] == "SUCCESS" and data["result"] == 42 and data["id"]


def test_send_with_kwargs_queue_priority_and_id(ctl_cluster):
    data = ok(ctl_cluster.zmqctl("send", "builtin.echo", "--args", '["a"]',
                                 "--kwargs", '{"b": 2}', "-Q", "ctl", "--priority", "9",
                                 "--id", "ctl-fixed-id-1", "--wait", "10"))
    assert data["id"] == "ctl-fixed-id-1"
    assert data["result"] == {"args": ["a"], "kwargs": {"b": 2}}


def test_send_wait_failure_exit_1_with_traceback(ctl_cluster):
    res = ctl_cluster.zmqctl("send", "builtin.fail", "--args", '["no thumbnails today"]',
                             "--max-retries", "0", "--wait", "10")
    assert res.rc == 1, res
    assert res.data["status"] == "FAILURE"
    assert "no thumbnails today" in json.dumps(res.data["result"])
    assert "traceback" in res.data


def test_send_wait_retries_then_success(ctl_cluster):
    data = ok(ctl_cluster.zmqctl("send", "builtin.flaky", "--args", "[1]", "--max-retries", "2",
                                 "--retry-delay", "0.05", "--wait", "10"))
    assert data["status"] == "SUCCESS" and data["result"] == 2


def test_send_wait_timeout_exit_3(ctl_cluster):
    res = ctl_cluster.zmqctl("send", "builtin.noop", "-Q", "nobody-serves", "--wait", "0.5")
    assert res.rc == 3, res


def test_send_unknown_task_rejected_exit_1(ctl_cluster):
    res = ctl_cluster.zmqctl("send", "no.such.task")
    assert res.rc == 1, res


def test_send_countdown(ctl_cluster):
    t0 = time.time()
    data = ok(ctl_cluster.zmqctl("send", "builtin.noop", "--countdown", "0.7", "--wait", "10"))
    meta = ctl_cluster.meta(data["id"])
    done = datetime.fromisoformat(meta["date_done"].replace("Z", "+00:00"))
    if done.tzinfo is None:
        done = done.replace(tzinfo=timezone.utc)
    assert done.timestamp() >= t0 + 0.7 - 0.002


def test_send_eta_iso8601(ctl_cluster):
    eta = datetime.fromtimestamp(time.time() + 0.8, tz=timezone.utc)
    res = ctl_cluster.zmqctl("send", "builtin.noop", "--eta", eta.isoformat(), "--wait", "10")
    data = ok(res)
    assert data["status"] == "SUCCESS"
    assert time.time() >= eta.timestamp()


def test_send_expires_in_past_is_revoked_exit_1(ctl_cluster):
    # --expires 0.05 s on a queue whose worker joins later: it expires first.
    data = ok(ctl_cluster.zmqctl("send", "builtin.noop", "-Q", "late", "--expires", "0.05"))
    time.sleep(0.1)  # wall-clock instant past the expiry, not a sufficiency guess
    ctl_cluster.start_worker(queues=["late"], concurrency=1)
    res = ctl_cluster.zmqctl("result", data["id"], "--wait", "10")
    assert res.rc == 1, res
    assert res.data["status"] == "REVOKED"


def test_countdown_and_eta_together_is_usage_error(ctl_cluster):
    res = ctl_cluster.zmqctl("send", "builtin.noop", "--countdown", "1", "--eta",
                             "2030-01-01T00:00:00Z")
    assert res.rc == 2, res


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["send"],
    ["send", "builtin.add", "--args", "{not json"],
    ["send", "builtin.add", "--args", '{"an": "object"}'],
    ["send", "builtin.add", "--priority", "eleven"],
    ["result"],
    ["inspect", "nonsense"],
    ["inspect"],
    ["revoke"],
], ids=lambda a: " ".join(a))
def test_usage_errors_exit_2(ctl_cluster, argv):
    res = ctl_cluster.zmqctl(*argv)
    assert res.rc == 2, res
    assert res.err.strip(), "a usage error should say what is wrong on stderr"


def test_help_exit_0(ctl_cluster):
    res = ctl_cluster.zmqctl("--help", json_out=False, broker_url=False, backend=False)
    assert res.rc == 0, res
    assert "send" in res.out + res.err


def test_result_command(ctl_cluster):
    tid = ok(ctl_cluster.zmqctl("send", "builtin.add", "--args", "[1, 1]"))["id"]
    data = ok(ctl_cluster.zmqctl("result", tid, "--wait", "10"))
    assert data == {**data, "id": tid, "status": "SUCCESS", "result": 2}


def test_result_pending_times_out_exit_3(ctl_cluster):
    res = ctl_cluster.zmqctl("result", "nobody-knows-this-id", "--wait", "0.3")
    assert res.rc == 3, res


def test_timeout_when_broker_absent_exit_3(cluster):
    res = cluster.zmqctl("--timeout", "0.5", "send", "builtin.noop", broker_url=False,
                         env={"ZMQ_BROKER_URL": "tcp://127.0.0.1:1"})
    assert res.rc == 3, res


def test_env_broker_url_used_without_b(ctl_cluster):
    """ZMQ_BROKER_URL is honoured (the fixture exports it) when -b is absent."""
    data = ok(ctl_cluster.zmqctl("send", "builtin.add", "--args", "[3, 4]", "--wait", "10",
                                 broker_url=False, backend=False))
    assert data["result"] == 7


def test_command_line_beats_environment(ctl_cluster):
    data = ok(ctl_cluster.zmqctl("send", "builtin.add", "--args", "[3, 5]", "--wait", "10",
                                 env={"ZMQ_BROKER_URL": "tcp://127.0.0.1:1"}))
    assert data["result"] == 8


def test_revoke_command(ctl_cluster):
    tid = ok(ctl_cluster.zmqctl("send", "builtin.noop", "-Q", "held"))["id"]
    data = ok(ctl_cluster.zmqctl("revoke", tid))
    assert data["id"] == tid and data["state"] == "queued"
    ctl_cluster.start_worker(queues=["held"], concurrency=1)
    res = ctl_cluster.zmqctl("result", tid, "--wait", "10")
    assert res.rc == 1 and res.data["status"] == "REVOKED", res


def test_revoke_terminate_accepted(ctl_cluster):
    tid = ok(ctl_cluster.zmqctl("send", "builtin.noop", "-Q", "held2"))["id"]
    data = ok(ctl_cluster.zmqctl("revoke", tid, "--terminate", "--signal", "SIGKILL"))
    assert data["state"] == "queued"


def test_purge_command(ctl_cluster):
    for _ in range(3):
        ok(ctl_cluster.zmqctl("send", "builtin.noop", "-Q", "purgeme"))
    data = ok(ctl_cluster.zmqctl("purge", "-Q", "purgeme"))
    assert data["purged"] == 3
    queues = ok(ctl_cluster.zmqctl("queues"))
    assert all(q["ready"] == 0 for q in queues if q["name"] == "purgeme")


def test_queues_command(ctl_cluster):
    ok(ctl_cluster.zmqctl("send", "builtin.noop", "-Q", "qlist", "--priority", "6"))
    queues = ok(ctl_cluster.zmqctl("queues"))
    (q,) = [q for q in queues if q["name"] == "qlist"]
    assert q["ready"] == 1 and q["by_priority"][6] == 1
    assert any(q["name"] == "ctl" and q["consumers"] == 1 for q in queues)
    human = ctl_cluster.zmqctl("queues", json_out=False)
    assert human.rc == 0 and "qlist" in human.out, human


def test_workers_command(ctl_cluster):
    workers = ok(ctl_cluster.zmqctl("workers"))
    (w,) = [w for w in workers if w["name"] == ctl_cluster.workers[0].name]
    assert w["concurrency"] == 2 and set(w["queues"]) == {"default", "ctl"}
    human = ctl_cluster.zmqctl("workers", json_out=False)
    assert human.rc == 0 and ctl_cluster.workers[0].name in human.out, human


@pytest.mark.parametrize("what", ["ping", "active", "reserved", "registered", "stats"])
def test_inspect_asks_every_worker(ctl_cluster, what):
    """Celery's `inspect`: every live worker answers, keyed by its name."""
    second = ctl_cluster.start_worker(queues=["other"], concurrency=1)
    data = ok(ctl_cluster.zmqctl("inspect", what))
    names = {ctl_cluster.workers[0].name, second.name}
    assert set(data) == names, data
    for name in names:
        if what == "ping":
            assert data[name] == {"pong": True}
        elif what == "registered":
            assert "builtin.add" in data[name]
        elif what == "stats":
            assert data[name]["pool"]["size"] == (2 if name == ctl_cluster.workers[0].name else 1)
            assert data[name]["pid"] > 0 and data[name]["uptime"] >= 0
        else:
            assert data[name] == []
    human = ctl_cluster.zmqctl("inspect", what, json_out=False)
    assert human.rc == 0 and all(n in human.out for n in names), human


def test_inspect_destination_and_broker_views(ctl_cluster):
    second = ctl_cluster.start_worker(queues=["other"], concurrency=1)
    data = ok(ctl_cluster.zmqctl("inspect", "ping", "-d", second.name))
    assert set(data) == {second.name}
    assert ok(ctl_cluster.zmqctl("inspect", "scheduled")) == []
    assert ok(ctl_cluster.zmqctl("ping"))["pong"] is True
    stats = ok(ctl_cluster.zmqctl("stats"))
    assert "submitted" in stats and "protocol_errors" in stats
    # A destination nobody answers to: no replies is a failure, as in Celery.
    res = ctl_cluster.zmqctl("inspect", "ping", "-d", "nobody@nowhere", "-t", "0.3")
    assert res.rc == 1, res


def test_inspect_shows_running_and_scheduled(ctl_cluster):
    running = ok(ctl_cluster.zmqctl("send", "builtin.progress", "--args", "[20, 0.05]",
                                    "-Q", "ctl"))["id"]
    later = ok(ctl_cluster.zmqctl("send", "builtin.noop", "--countdown", "30"))["id"]
    name = ctl_cluster.workers[0].name

    def progress_of_running():
        for a in ok(ctl_cluster.zmqctl("inspect", "active")).get(name, []):
            if a["id"] == running and a["progress"]:
                return a
        return None

    seen = wait_until(progress_of_running, 5, interval=0.05,
                      message="running task with progress in inspect active")
    assert seen["task"] == "builtin.progress" and seen["runtime"] >= 0
    assert seen["progress"]["total"] == 20
    assert any(s["id"] == later for s in ok(ctl_cluster.zmqctl("inspect", "scheduled")))
    ok(ctl_cluster.zmqctl("revoke", later))
    ctl_cluster.wait_result(running)


def test_control_shutdown_stops_only_the_named_worker(ctl_cluster):
    second = ctl_cluster.start_worker(queues=["other"], concurrency=1)
    data = ok(ctl_cluster.zmqctl("control", "shutdown", "-d", second.name))
    assert set(data) == {second.name}
    assert second.proc.wait(10) == 0, "the worker must exit 0 after a remote shutdown"
    assert ok(ctl_cluster.zmqctl("inspect", "ping")) == {ctl_cluster.workers[0].name: {"pong": True}}


def test_broker_commands_without_broker_time_out(cluster):
    for argv in (["queues"], ["purge"]):
        res = cluster.zmqctl("--timeout", "0.3", *argv, broker_url=False,
                             env={"ZMQ_BROKER_URL": "tcp://127.0.0.1:1"})
        assert res.rc == 3, res
