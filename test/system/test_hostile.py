"""Issue 2, scenario 7: hostile input. Malformed frames, a wrong signature,
garbage MessagePack, an oversized message, lying array/map headers and an
unknown task name each get an error reply (PROTOCOL.md §3, §5.1, §11), bump
protocol_errors, and the broker goes on serving the next valid request."""

import os
import random

import pytest

from conftest import Cluster
from ztp import (BYE, CONTROL, CREDIT, DONE, HEARTBEAT, SIGNATURE, SUBMIT,
                 pack, task_message)


@pytest.fixture(scope="module")
def hostile_cluster(redis_server, tmp_path_factory):
    """One broker (64 KiB message limit) and one worker shared by the
    module's tests: each test also checks the broker still serves, so
    sharing them makes the abuse cumulative, as it would be in the wild."""
    c = Cluster(tmp_path_factory.mktemp("hostile"), redis_server)
    try:
        c.start_broker(heartbeat_ms=200, liveness=3, max_message_bytes=64 * 1024)
        c.start_worker(queues=["default"], concurrency=1)
    except BaseException:
        c.shutdown()
        raise
    yield c
    problems = c.shutdown()
    if problems:
        pytest.fail("processes did not end cleanly:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def hostile(request, hostile_cluster):
    """(broker, worker) of the shared cluster; checks both are alive."""
    request.node._zt_cluster = hostile_cluster
    broker, worker = hostile_cluster.broker, hostile_cluster.workers[0]
    assert broker.proc.alive(), "the shared broker died in an earlier test"
    assert worker.proc.alive(), "the shared worker died in an earlier test"
    return broker, worker


def still_serves(cluster, client):
    """The broker answers ping and runs a valid task after the abuse."""
    assert client.control("ping")["pong"] is True
    tid = client.submit_ok("builtin.add", args=[2, 3])
    meta = cluster.wait_result(tid, timeout=10)
    assert meta["status"] == "SUCCESS" and meta["result"] == 5


def errors(client):
    return client.control("stats")["protocol_errors"]


def expect_error(client, frames, codes, commands=("ERROR",)):
    client.send_raw(frames)
    reply = client.recv(timeout=5)
    assert reply.name in commands, f"sent {frames!r}, got {reply!r}"
    assert reply.code in codes, f"sent {frames!r}, got {reply!r}"
    return reply


CASES = [
    # (label, frames, acceptable codes, acceptable reply commands)
    ("wrong signature", [b"ZTP02", bytes([SUBMIT]), pack({})], {"bad-signature"}, ("ERROR",)),
    ("lower-case signature", [b"ztp01", bytes([CONTROL]), pack({"op": "ping", "req": 1})],
     {"bad-signature"}, ("ERROR",)),
    ("signature only", [SIGNATURE], {"bad-frames"}, ("ERROR",)),
    ("no body frame", [SIGNATURE, bytes([CONTROL])], {"bad-frames"}, ("ERROR",)),
    ("empty frame", [b""], {"bad-signature", "bad-frames"}, ("ERROR",)),
    ("too many frames", [SIGNATURE, bytes([CONTROL]), pack({"op": "ping", "req": 1}), b"x", b"y"],
     {"bad-frames"}, ("ERROR",)),
    ("unknown command byte", [SIGNATURE, b"\x55", pack({})], {"bad-command"}, ("ERROR",)),
    ("two-byte command", [SIGNATURE, b"\x01\x01", pack({})], {"bad-command", "bad-frames"},
     ("ERROR",)),
    ("empty command", [SIGNATURE, b"", pack({})], {"bad-command", "bad-frames"}, ("ERROR",)),
    ("broker-only command from a client", [SIGNATURE, b"\x13", pack({}), pack({})],
     {"bad-command", "bad-frames"}, ("ERROR",)),
    ("garbage control body", [SIGNATURE, bytes([CONTROL]), b"\xc1\xc1\xc1"], {"bad-body"},
     ("ERROR",)),
    ("control body not a map", [SIGNATURE, bytes([CONTROL]), pack([1, 2, 3])], {"bad-body"},
     ("ERROR",)),
    ("control body with trailing bytes",
     [SIGNATURE, bytes([CONTROL]), pack({"op": "ping", "req": 1}) + b"\x00"], {"bad-body"},
     ("ERROR",)),
    ("control map header lying (2^32-1 entries)",
     [SIGNATURE, bytes([CONTROL]), b"\xdf\xff\xff\xff\xff"], {"bad-body"}, ("ERROR",)),
    ("submit garbage msgpack", [SIGNATURE, bytes([SUBMIT]), b"\xc1garbage"], {"bad-body"},
     ("REJECTED",)),
    ("submit truncated map", [SIGNATURE, bytes([SUBMIT]), pack({"id": "x", "task": "t"})[:-2]],
     {"bad-body"}, ("REJECTED",)),
    ("submit array header lying (2^32-1 items)",
     [SIGNATURE, bytes([SUBMIT]), b"\xdd\xff\xff\xff\xff"], {"bad-body"}, ("REJECTED",)),
    ("submit args header lying",
     [SIGNATURE, bytes([SUBMIT]),
      b"\x83" + pack("id") + pack("lie-1") + pack("task") + pack("builtin.noop")
      + pack("args") + b"\xdd\x7f\xff\xff\xff"], {"bad-body"}, ("REJECTED",)),
    ("submit not a map", [SIGNATURE, bytes([SUBMIT]), pack("builtin.add")], {"bad-body"},
     ("REJECTED",)),
    ("submit without id", [SIGNATURE, bytes([SUBMIT]), pack({"task": "builtin.add"})],
     {"invalid-field"}, ("REJECTED",)),
    ("submit without task", [SIGNATURE, bytes([SUBMIT]), pack({"id": "no-task-1"})],
     {"invalid-field"}, ("REJECTED",)),
    ("submit priority out of range",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", priority=10))],
     {"invalid-field"}, ("REJECTED",)),
    ("submit priority wrong type",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", priority="high"))],
     {"invalid-field"}, ("REJECTED",)),
    ("submit args not an array",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", args=None) | {"args": 7})],
     {"invalid-field"}, ("REJECTED",)),
    ("submit kwargs not a map",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop") | {"kwargs": [1]})],
     {"invalid-field"}, ("REJECTED",)),
    ("submit bad id characters",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", id="a b/c\n"))],
     {"invalid-field"}, ("REJECTED",)),
    ("submit bad queue name",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", queue="no spaces!"))],
     {"invalid-field"}, ("REJECTED",)),
    ("submit negative countdown",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", countdown=-5.0))],
     {"invalid-field"}, ("REJECTED",)),
    ("submit id too long",
     [SIGNATURE, bytes([SUBMIT]), pack(task_message("builtin.noop", id="x" * 129))],
     {"invalid-field"}, ("REJECTED",)),
]


@pytest.mark.parametrize("label,frames,codes,commands", CASES, ids=[c[0] for c in CASES])
def test_malformed_message_gets_error_reply(hostile_cluster, hostile, label, frames, codes, commands):
    cluster = hostile_cluster
    client = cluster.client()
    before = errors(client)
    expect_error(client, frames, codes, commands)
    if commands == ("ERROR",):
        assert errors(client) > before, "protocol_errors not bumped"
    still_serves(cluster, client)


def test_deeply_nested_args(hostile_cluster, hostile):
    cluster = hostile_cluster
    """50,000 nested arrays: valid MessagePack, but a recursive decoder would
    blow its stack. Rejecting is fine; accepting is fine too if the worker
    then survives it."""
    client = cluster.client()
    tid = "deep-" + os.urandom(4).hex()
    body = (b"\x83" + pack("id") + pack(tid) + pack("task") + pack("builtin.echo")
            + pack("args") + b"\x91" * 50000 + b"\xc0")
    client.send_raw([SIGNATURE, bytes([SUBMIT]), body])
    reply = client.recv()
    if reply.accepted:
        cluster.wait_result(tid, timeout=15)
    else:
        assert reply.code in ("bad-body", "invalid-field", "too-large"), reply
    assert hostile[1].proc.alive(), "worker died on deeply nested args"
    still_serves(cluster, client)


def test_rejected_submit_names_the_id(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    msg = task_message("builtin.noop", priority=42)
    reply = client.submit(msg)
    assert reply.rejected and reply.code == "invalid-field"
    assert reply.body.get("id") == msg["id"]
    assert "priority" in reply.body.get("reason", ""), reply


def test_oversized_message(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    big = task_message("builtin.echo", args=["x" * (100 * 1024)])
    reply = client.submit(big)
    assert reply.name in ("ERROR", "REJECTED") and reply.code == "too-large", reply
    # Over the limit across frames, each small.
    client.send_raw([SIGNATURE, bytes([CONTROL]), pack({"op": "ping", "req": 9})] + [b"y" * 30000] * 3)
    reply = client.recv()
    assert reply.is_error and reply.code in ("too-large", "bad-frames"), reply
    still_serves(cluster, client)


def test_default_limit_is_one_mebibyte(cluster):
    cluster.start_broker()
    cluster.start_worker(queues=["default"], concurrency=1)
    client = cluster.client()
    near = task_message("builtin.echo", args=["x" * (900 * 1024)])
    assert client.submit(near).accepted
    over = task_message("builtin.echo", args=["x" * (1100 * 1024)])
    reply = client.submit(over)
    assert reply.name in ("ERROR", "REJECTED") and reply.code == "too-large", reply
    assert cluster.wait_result(near["id"], timeout=15)["status"] == "SUCCESS"
    still_serves(cluster, client)


def test_unknown_task_name_rejected(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    msg = task_message("no.such.task", queue="default")
    reply = client.submit(msg)
    assert reply.rejected and reply.code == "unknown-task", reply
    assert reply.body.get("id") == msg["id"]
    assert cluster.meta(msg["id"]) is None
    still_serves(cluster, client)


def test_duplicate_id_rejected(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    msg = task_message("builtin.noop", queue="nobody-serves-this")
    assert client.submit(msg).accepted
    reply = client.submit(msg)
    assert reply.rejected and reply.code == "duplicate-id", reply


def test_worker_command_from_stranger_gets_unknown_worker(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    for cmd, body in ((HEARTBEAT, {}), (CREDIT, {"credit": 5}),
                      (DONE, {"id": "nope", "status": "success", "runtime": 0.1})):
        client.send(cmd, body)
        reply = client.recv()
        assert reply.is_error and reply.code == "unknown-worker", (cmd, reply)
    client.send(BYE, {})  # harmless from a stranger; must not crash anything
    client.drain(0.1)
    still_serves(cluster, client)


def test_unknown_control_op(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    body = client.control_reply("format-disk")
    assert body["ok"] is False and "format-disk" in body.get("error", "")


def test_control_wrong_argument_types(hostile_cluster, hostile):
    cluster = hostile_cluster
    client = cluster.client()
    for op, args in (("revoke", {"id": 12}), ("purge", {"queue": ["a"]}), ("revoke", {})):
        client.send(CONTROL, dict(args, req=77, op=op))
        reply = client.recv()
        # Either an ERROR invalid-field or a CONTROL-REPLY ok: false; never a crash.
        if reply.is_error:
            assert reply.code in ("invalid-field", "bad-body"), reply
        else:
            assert reply.body.get("ok") is False, reply
    still_serves(cluster, client)


def test_random_garbage_storm(hostile_cluster, hostile):
    cluster = hostile_cluster
    """Two thousand random messages (random frame counts and bytes, some
    with the right signature and a real command) from two peers; the broker
    answers or ignores each and keeps serving."""
    rng = random.Random(1234)
    clients = [cluster.client(), cluster.client()]
    commands = [0x01, 0x04, 0x10, 0x12, 0x14, 0x15, 0x16, 0x17, 0x19, 0x1A, 0x7F, 0x00, 0xFF]
    for i in range(2000):
        c = clients[i % 2]
        nframes = rng.randint(1, 5)
        frames = []
        for k in range(nframes):
            if k == 0 and rng.random() < 0.7:
                frames.append(SIGNATURE)
            elif k == 1 and rng.random() < 0.8:
                frames.append(bytes([rng.choice(commands)]))
            else:
                frames.append(os.urandom(rng.randint(0, 64)))
        c.send_raw(frames)
    for c in clients:
        c.drain(0.5)
    still_serves(cluster, cluster.client())
    assert hostile[1].proc.alive()


def test_hello_with_bad_fields(hostile_cluster, hostile):
    cluster = hostile_cluster
    """A HELLO with wrong types is refused without registering a worker."""
    client = cluster.client()
    before = {w["name"] for w in client.control("workers")}
    client.send(0x10, {"name": 5, "queues": "not-a-list", "concurrency": -1, "credit": "x",
                       "tasks": [1, 2]})
    reply = client.recv()
    assert reply.is_error and reply.code in ("invalid-field", "bad-body"), reply
    assert {w["name"] for w in client.control("workers")} == before
    still_serves(cluster, client)
