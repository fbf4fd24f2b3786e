"""Writes the seed corpus for the fuzz targets (run from anywhere with
/usr/bin/python3; the output is committed, so this is only needed when the
formats change): corpus/body/* are MessagePack bodies, corpus/journal/*
small journal and snapshot files in the format of docs/DURABILITY.md."""

import struct
import zlib
from pathlib import Path

import msgpack

HERE = Path(__file__).resolve().parent


def record_crc(data, crc=0):
    """The journal's record checksum: zlib's CRC-32 (broker/jfile.c)."""
    return zlib.crc32(data, crc)


def header(kind, gen):
    h = b"ZTJ1" + bytes([1, ord(kind), 0, 0]) + struct.pack("<Q", gen)
    return h + struct.pack("<I", record_crc(h)) + b"\0\0\0\0"


def frame(rtype, payload):
    h = struct.pack("<BBBBI", 0xD7, 0x4A, rtype, 0, len(payload))
    return h + struct.pack("<I", record_crc(payload, record_crc(h))) + payload


def add(tid, name="builtin.add", queue="default", body=None, flags=0, revoked=0,
        priority=0, retries=0, expires=0.0, due=0.0):
    body = body or msgpack.packb({"id": tid, "task": name, "args": [1, 2]})
    tid, name, queue = tid.encode(), name.encode(), queue.encode()
    fixed = struct.pack("<BBBBBBHIIdd", flags, revoked, priority, len(tid), len(name),
                        len(queue), 0, retries, len(body), expires, due)
    return frame(1, fixed + tid + name + queue + body)


def idrec(rtype, tid):
    return frame(rtype, bytes([len(tid)]) + tid.encode())


def main():
    body = HERE / "corpus" / "body"
    body.mkdir(parents=True, exist_ok=True)
    bodies = {
        "empty_map": {},
        "task_min": {"id": "t1", "task": "builtin.noop"},
        "task_full": {"id": "a-b.c:d@e", "task": "builtin.add", "args": [1, 2.5, None, True],
                      "kwargs": {"x": [1, {"y": "z"}]}, "queue": "q.1", "priority": 9,
                      "eta": 1800000000.0, "countdown": 3, "expires": 1900000000,
                      "retries": 2, "max_retries": 5, "retry_delay": 0.5, "time_limit": 10,
                      "soft_time_limit": 8, "parent_id": None, "root_id": "r",
                      "ignore_result": True},
        "task_bad_priority": {"id": "t", "task": "x", "priority": 10},
        "control": {"req": 1, "op": "broadcast", "command": "ping", "timeout": 1.0,
                    "destination": ["w@h"], "arguments": {"k": b"bin"}},
        "hello": {"name": "w@h", "queues": ["a", "b"], "credit": 8, "tasks": ["builtin.add"]},
        "done": {"id": "t1", "status": "retry", "countdown": 1.5, "credit": 1},
    }
    for name, obj in bodies.items():
        (body / name).write_bytes(msgpack.packb(obj, use_bin_type=True))
    (body / "deep").write_bytes(b"\x91" * 40 + b"\xc0")
    (body / "huge_count").write_bytes(b"\xdf\xff\xff\xff\xff\xa1a")
    (body / "trailing").write_bytes(msgpack.packb({"a": 1}) + b"\x00")

    journal = HERE / "corpus" / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    recs = [
        add("t1", priority=5, retries=1, expires=1900000000.0),
        add("t2", queue="q2", due=1800000000.5),
        add("t3", flags=1, revoked=1),
        idrec(2, "t1"),
        frame(3, bytes([1, 2]) + b"t1"),
        idrec(4, "t2"),
        frame(5, struct.pack("<Id", 3, 1800000001.0) + bytes([2]) + b"t1"),
        frame(6, bytes([2, 2]) + b"t2"),
        idrec(7, "t3"),
        frame(8, bytes([2]) + b"q2"),
        frame(8, bytes([0])),
        idrec(9, "gone"),
        frame(11, struct.pack("<d", 1800000000.0) + bytes([4]) + b"tick"),
    ]
    (journal / "journal_all_types").write_bytes(header("J", 1) + b"".join(recs))
    snap = header("S", 2) + add("s1", flags=2) + add("s2") + idrec(9, "x") + \
        idrec(7, "done1") + frame(11, struct.pack("<d", 1800000000.0) + bytes([4]) + b"tick") + \
        frame(10, struct.pack("<QQ", 2, 1))
    (journal / "snapshot").write_bytes(snap)
    full = header("J", 3) + b"".join(recs)
    (journal / "torn_tail").write_bytes(full[:-7])
    damaged = bytearray(full)
    damaged[24 + 20] ^= 0xFF
    (journal / "corrupt_first").write_bytes(bytes(damaged))
    (journal / "header_only").write_bytes(header("J", 4))


if __name__ == "__main__":
    main()
