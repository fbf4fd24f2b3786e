"""Issue 9, secrets hygiene (docs/SECURITY.md): a full Drive2 run under CURVE
with a distinctive value for every secret the cluster knows - the Gemini API
key (environment), the LINE channel token and the S3 secret key (from *_FILE
files, the Docker-secrets way), and the secret key of every CURVE certificate
- then a search through everything the run left behind: every log and
stdout/stderr file, the events stream (a CURVE subscriber for the whole run),
every value in Redis, the catalog, the answers of `zmqctl stats / workers /
inspect stats`, the --help of every program, and the command lines of every
process on the machine. None may hold a secret.

Task payloads are user data: a canary sent as a task argument reaches its
result (Redis), but no log line and no event, even at --loglevel debug."""

import json
import os
import secrets
import sqlite3
import subprocess
from pathlib import Path

import pytest

import ztp
from conftest import CurveKeys, Events, binary
from drive2_mocks import GeminiMock, S3Server
from drive2util import Drive2, drive2_env, make_jpeg_with_exif
from line_mock import LineMock

QUEUES = ["ai_processing", "thumbnails", "notifications"]
PROGRAMS = ("zmqbroker", "zmqworker", "zmqctl", "zmqbench", "zmqbeat", "drive2")


def all_cmdlines():
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out.append((d / "cmdline").read_bytes().replace(b"\0", b" "))
            except OSError:
                pass  # gone meanwhile
    return b"\n".join(out)


@pytest.mark.zt_timeout(240)
def test_no_secret_in_logs_events_results_help_or_ps(cluster, tmp_path):
    tag = secrets.token_hex(6)
    gemini_key = f"zt-gemini-key-{tag}"
    line_token = f"zt-line-token-{tag}"
    s3_secret = f"zt-s3-secret-{tag}"
    wrong_s3 = f"zt-wrong-s3-secret-{tag}"
    payload = f"zt-payload-canary-{tag}"
    secret_dir = tmp_path / "run-secrets"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "line_token").write_text(line_token + "\n")
    (secret_dir / "s3_secret").write_text(s3_secret)
    for f in secret_dir.iterdir():
        f.chmod(0o600)

    keys = CurveKeys(tmp_path / "keys")
    for name, role in (("w1", "worker"), ("alice", "client"), ("root", "admin")):
        keys.add(name, role)
    curve_secrets = {f"curve secret of {n}": ztp.load_cert(p)[1]
                     for n, p in {**keys.secret, "broker": keys.broker_secret}.items()}
    secret_values = {"GEMINI_API_KEY": gemini_key, "LINE token": line_token,
                     "S3 secret": s3_secret, "wrong S3 secret": wrong_s3, **curve_secrets}
    assert all(secret_values.values())

    cluster.use_curve(keys, client="root")
    cluster.start_broker(heartbeat_ms=200, liveness=3, extra=["--loglevel", "debug"])
    events = Events(cluster.broker.events_endpoint, curve=keys.curve("alice"))
    cluster.event_streams.append(events)
    events.sync(cluster.client())

    with S3Server(tmp_path / "s3", bucket="drive2", lifetime=230,
                  key_pair=("ZTTESTKEY", s3_secret)) as s3, \
            GeminiMock(gemini_key, lifetime=230) as gemini, \
            LineMock(token=line_token, lifetime=230) as line:
        services = {**s3.env(), "AWS_SECRET_ACCESS_KEY": None,
                    "AWS_SECRET_ACCESS_KEY_FILE": str(secret_dir / "s3_secret"),
                    "GEMINI_API_KEY": gemini_key, "GEMINI_BASE_URL": gemini.url,
                    "LINE_API_BASE_URL": line.url, "LINE_CHANNEL_ACCESS_TOKEN": None,
                    "LINE_CHANNEL_ACCESS_TOKEN_FILE": str(secret_dir / "line_token")}
        worker_env = drive2_env({**services, **keys.client_env("w1")})
        cluster.start_worker(queues=QUEUES, concurrency=2, env=worker_env,
                             extra=["--loglevel", "debug"])
        d2 = Drive2(cluster, {**services, **keys.client_env("alice")})
        d2.run("status", "no-such-file")  # creates the catalog
        with sqlite3.connect(str(cluster.dir / "drive2-data" / "catalog.db"), timeout=10) as db:
            db.execute("INSERT INTO users (id, quota_bytes, line_user_id, created_at) VALUES "
                       "('alice', 10737418240, ?, '2026-01-01T00:00:00.000000Z')",
                       ("U" + "a1" * 16,))
        folder = tmp_path / "in"
        folder.mkdir()
        notes = folder / "notes.md"
        notes.write_text("# Solar panels\n\nSolar panels turn sunlight into electricity.\n")
        photo = folder / "IMG_0001.JPG"
        photo.write_bytes(make_jpeg_with_exif("Canon", "Canon EOS 80D", "2024:05:01 10:30:00"))
        up = [d2.upload(p, "--user", "alice") for p in (notes, photo)]
        final = [d2.wait_final(u["file_id"], timeout=90) for u in up]
        assert all(f["processing_status"] == "completed" for f in final), final
        assert all(f["ai_filename"] == "quarterly-report.txt" for f in final)  # Gemini's answer
        assert gemini.requests and not gemini.errors
        line.wait_delivered(2, timeout=60)  # one notice per file, with the token from its file
        assert not line.errors
        assert list((tmp_path / "s3").rglob("*")), "nothing stored in S3"

        # an error path: a wrong S3 secret is refused, and not quoted in the refusal
        bad = Drive2(cluster, {**services, **keys.client_env("alice"),
                               "AWS_SECRET_ACCESS_KEY_FILE": None,
                               "AWS_SECRET_ACCESS_KEY": wrong_s3})
        rc, _, p = bad.run("upload", notes, "--user", "alice")
        assert rc != 0, p.stdout
        refusal = p.stdout + p.stderr

        # a payload canary: into the result, nowhere else
        res = cluster.zmqctl("send", "builtin.echo", "--args", json.dumps([payload]), "-Q",
                             "notifications", "--wait", "20", env=keys.client_env("alice"))
        assert res.rc == 0 and res.data["result"]["args"] == [payload], res
        events.wait_for(lambda e: e["type"] == "task-succeeded" and e["id"] == res.data["id"],
                        timeout=10, what="the canary task's task-succeeded")

        answers = [cluster.zmqctl(*a).out for a in (("stats",), ("workers",), ("queues",),
                                                     ("inspect", "stats"), ("inspect", "active"),
                                                     ("inspect", "registered"))]
        helps = []
        for prog in PROGRAMS:  # with every secret in the environment
            h = subprocess.run([binary(prog), "--help"], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL,
                               env=cluster.env({**services, **keys.client_env("alice")}))
            assert h.returncode == 0, (prog, h.stderr)
            helps.append(h.stdout + h.stderr)
        cmdlines = all_cmdlines()  # while broker, worker, pool and mocks run

    # everything the run left behind
    texts = {}
    for f in sorted(cluster.dir.rglob("*")):
        if f.is_file() and f.suffix in (".log", ".out"):
            texts[str(f.relative_to(cluster.dir))] = f.read_bytes()
    texts["catalog.db"] = (cluster.dir / "drive2-data" / "catalog.db").read_bytes()
    texts["events"] = json.dumps(events.snapshot()).encode()
    texts["zmqctl answers"] = "\n".join(answers).encode()
    texts["--help"] = "\n".join(helps).encode()
    texts["wrong-secret refusal"] = refusal.encode()
    texts["command lines"] = cmdlines
    values = []
    for k in cluster.redis.keys("*"):
        kind = cluster.redis.type(k)
        if kind == "string":
            values.append(cluster.redis.get(k) or "")
        elif kind == "list":
            values += cluster.redis.lrange(k, 0, -1)
        elif kind == "hash":
            values += [f"{a}={b}" for a, b in cluster.redis.hgetall(k).items()]
        elif kind == "set":
            values += sorted(cluster.redis.smembers(k))
        elif kind == "zset":
            values += cluster.redis.zrange(k, 0, -1)
        values.append(k)
    redis_dump = "\n".join(values).encode()
    texts["redis"] = redis_dump
    assert len(events.snapshot()) > 20 and any(k.endswith(".log") for k in texts)

    leaks = [(what, where) for what, value in secret_values.items()
             for where, blob in texts.items() if value.encode() in blob]
    assert not leaks, f"secrets found: {leaks}"
    payload_leaks = [where for where, blob in texts.items()
                     if payload.encode() in blob and where != "redis"]
    assert not payload_leaks, f"payload canary in {payload_leaks}"
    # the search looks where it should: the canary's own result, the processes, the logs
    assert payload.encode() in redis_dump
    assert cluster.broker.endpoint.encode() in cmdlines
    assert up[0]["file_id"].encode() in b"".join(v for k, v in texts.items() if k.endswith(".log"))
    assert os.environ.get("GEMINI_API_KEY") != gemini_key
    print(f"\nsecrets: {len(secret_values)} secrets and a payload canary absent from "
          f"{len(texts)} sources, {sum(len(b) for b in texts.values())} bytes "
          f"({', '.join(sorted(k for k in texts if k.endswith('.log')))}; "
          f"{len(events.snapshot())} events)")
