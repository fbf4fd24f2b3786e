"""The broker once under valgrind (memcheck): a short session of ordinary
work, control requests and hostile input, then SIGTERM; any invalid read or
write, use of uninitialised memory or definite leak fails the test.
Skipped for the ASan build (the two do not mix) and when valgrind is missing."""

import shutil
import time

import pytest

from conftest import binary, wait_until
from ztp import CONTROL, SIGNATURE, SUBMIT, pack, task_message

VALGRIND = shutil.which("valgrind")


def _is_sanitized(path):
    with open(path, "rb") as f:
        return b"libasan" in f.read()


@pytest.mark.slow
@pytest.mark.zt_timeout(180)
def test_broker_under_valgrind(cluster):
    if VALGRIND is None:
        pytest.skip("valgrind not installed")
    if _is_sanitized(binary("zmqbroker")):
        pytest.skip("sanitizer build: valgrind runs on the plain build only")
    vlog = cluster.dir / "valgrind.txt"
    broker = cluster.start_broker(
        heartbeat_ms=1000, ping_timeout=60,
        wrapper=[VALGRIND, "--quiet", "--error-exitcode=99", "--leak-check=full",
                 "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                 "--track-origins=yes", f"--log-file={vlog}"])
    worker = cluster.start_worker(queues=["vg"], concurrency=2, wait_online=False)
    client = cluster.client(timeout=20)
    wait_until(lambda: any(w["name"] == worker.name for w in client.control("workers")), 60,
               interval=0.2, message="worker online at the valgrind broker")

    msgs = [task_message("builtin.add", args=[i, 1], queue="vg", priority=i % 10)
            for i in range(50)]
    msgs.append(task_message("builtin.flaky", args=[1], queue="vg", max_retries=2,
                             retry_delay=0.05))
    msgs.append(task_message("builtin.noop", queue="vg", countdown=0.3))
    msgs.append(task_message("builtin.noop", queue="vg", expires=time.time() - 1))
    assert all(r.accepted for r in client.submit_many(msgs))
    queued = client.submit_ok("builtin.noop", queue="nobody")
    client.control("revoke", id=queued)
    client.submit_ok("builtin.noop", queue="nobody")
    client.control("purge", queue="nobody")
    for op in ("queues", "workers", "scheduled", "active", "reserved", "registered", "stats"):
        client.control(op)
    for frames in ([b"XXXXX", b"\x01", b"\x80"], [SIGNATURE, b"\x01", b"\xc1"],
                   [SIGNATURE, bytes([CONTROL]), b"\xdf\xff\xff\xff\xff"],
                   [SIGNATURE, bytes([SUBMIT]), pack({"id": "v1"})], [SIGNATURE]):
        client.send_raw(frames)
        client.recv()
    metas = cluster.wait_results([m["id"] for m in msgs], timeout=90)
    statuses = [metas[m["id"]]["status"] for m in msgs]
    assert statuses == ["SUCCESS"] * (len(msgs) - 1) + ["REVOKED"], statuses

    worker.stop()
    rc = broker.proc.stop(timeout=60)
    report = vlog.read_text(errors="replace") if vlog.exists() else ""
    assert rc == 0, f"valgrind/broker exit status {rc}:\n{report[-6000:]}"
    assert "Invalid " not in report and "uninitialised" not in report, report[-6000:]
    broker.proc.problems.clear()  # asserted above, with the report
