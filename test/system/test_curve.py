"""Issue 9 on loopback: CurveZMQ on the broker's two sockets, roles from
certificate metadata, `zmqctl keygen`, revocation by SIGHUP, and the broker's
refusal to serve a non-loopback endpoint in the clear (docs/SECURITY.md).

Keys are made by the real `zmqctl keygen` (conftest.CurveKeys); the Python
peers (ztp.Client, conftest.Events) speak CURVE through pyzmq with the same
certificates, so the broker is checked against what a foreign client sees.
The network-namespace version with packet captures is in test_hosts.py."""

import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import zmq

import ztp
from conftest import LOGLEVEL, CurveKeys, Events, binary, free_port, wait_until


# A peer without CURVE: whichever side notices first, the broker logs one of these.
NOT_CURVE = r"(the peer does not use CURVE|the peer closed the connection during the handshake)"


@pytest.fixture
def keys(tmp_path):
    k = CurveKeys(tmp_path / "keys")
    k.add("w1", "worker")
    k.add("w2", "worker")
    k.add("alice", "client")
    k.add("root", "admin")
    k.add("beat1", "beat")
    return k


@pytest.fixture
def secure(cluster, keys):
    """A CURVE broker; the cluster's own clients use the admin key."""
    cluster.use_curve(keys, client="root")
    cluster.start_broker(heartbeat_ms=200, liveness=3)
    return cluster


def broker_log(cluster):
    return Path(cluster.broker.proc.logfile).read_text(errors="replace")


def wait_log(cluster, pattern, timeout=10, proc=None):
    """Waits until the log of proc (default: the broker) matches pattern."""
    path = Path((proc or cluster.broker.proc).logfile)
    rx = re.compile(pattern)

    def found():
        try:
            return rx.search(path.read_text(errors="replace"))
        except FileNotFoundError:  # the program has not opened its log yet
            return None

    return wait_until(found, timeout, interval=0.05, message=f"/{pattern}/ in {path.name}")


def online(cluster, name):
    return any(e["name"] == name and e.get("online", True)
               for e in cluster.client().control("workers", timeout=2))


# ---------------------------------------------------------------------------
# zmqctl keygen


def test_keygen_writes_a_pair_secret_0600_and_never_overwrites(tmp_path):
    d = tmp_path / "k"
    p = subprocess.run([binary("zmqctl"), "--json", "keygen", "node-1", "--role", "worker",
                        "--dir", str(d)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    pub, sec = Path(out["public"]), Path(out["secret"])
    assert pub == d / "node-1.key" and sec == d / "node-1.key_secret"
    assert stat.S_IMODE(sec.stat().st_mode) == 0o600
    public, secret, meta = ztp.load_cert(sec)
    assert secret and public == out["public_key"] and len(public) == 40
    assert meta == {"name": "node-1", "role": "worker"}
    assert ztp.load_cert(pub)[1] is None  # the public half carries no secret
    assert ztp.load_cert(pub)[2] == meta
    assert secret not in p.stdout + p.stderr  # printed: the public key only
    before = sec.read_bytes()
    again = subprocess.run([binary("zmqctl"), "keygen", "node-1", "--role", "worker", "--dir",
                            str(d)], capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "exists" in again.stderr, again
    assert sec.read_bytes() == before
    for argv, why in ((["keygen", "x", "--role", "root"], "--role"),
                      (["keygen", "x"], "--role"),
                      (["keygen", "../x", "--role", "client"], "bad NAME"),
                      (["keygen", "--role", "client"], "NAME")):
        bad = subprocess.run([binary("zmqctl"), *argv, "--dir", str(d)], capture_output=True,
                             text=True, timeout=30)
        assert bad.returncode == 2 and why in bad.stderr, (argv, bad.stderr)


# ---------------------------------------------------------------------------
# tasks, events and roles


@pytest.mark.zt_timeout(120)
def test_tasks_flow_with_curve_and_each_role_does_its_job(secure, keys):
    cluster = secure
    log = broker_log(cluster)
    assert "(CURVE)" in log and "loaded 5 allowed keys" in log, log
    w = cluster.start_worker(queues=["default"], concurrency=2, env=keys.client_env("w1"))
    wait_log(cluster, rf"worker {re.escape(w.name)} online .*key 'w1'")
    ev = Events(cluster.broker.events_endpoint, curve=keys.curve("alice"))
    cluster.event_streams.append(ev)
    alice = ztp.Client(cluster.broker.endpoint, curve=keys.curve("alice"))
    cluster.clients.append(alice)
    ev.sync(alice)

    # the real client program with a client key
    res = cluster.zmqctl("send", "builtin.add", "--args", "[2, 3]", "--wait", "20",
                         env=keys.client_env("alice"))
    assert res.rc == 0 and res.data["status"] == "SUCCESS" and res.data["result"] == 5, res
    ev.wait_for(lambda e: e["type"] == "task-succeeded" and e["id"] == res.data["id"],
                timeout=10, what="task-succeeded through CURVE")
    res = cluster.zmqctl("workers", env=keys.client_env("alice"))
    assert res.rc == 0 and w.name in {e["name"] for e in res.data}, res

    # zmqbench with a client key, completions from the events socket (CURVE too)
    p = subprocess.run([binary("zmqbench"), "-b", cluster.broker.endpoint, "--tasks", "300",
                        "--no-results", "--json"], capture_output=True, text=True, timeout=60,
                       env={**cluster.env(keys.client_env("alice")),
                            "ZMQ_EVENTS_URL": cluster.broker.events_endpoint})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tasks"] == 300

    # a worker key may send follow-up tasks (tasks sending tasks), nothing else
    w1 = ztp.Client(cluster.broker.endpoint, curve=keys.curve("w1"))
    cluster.clients.append(w1)
    assert w1.submit(ztp.task_message("builtin.noop")).accepted
    w1.send(ztp.CONTROL, {"req": 1, "op": "queues"})
    reply = w1.recv()
    assert reply.is_error and reply.code == "forbidden", reply
    assert "key 'w1' has role worker" in reply.body["reason"], reply

    # beat keys hold the beat lease; nobody else may
    beat = ztp.Client(cluster.broker.endpoint, curve=keys.curve("beat1"))
    cluster.clients.append(beat)
    lease = beat.control("beat-lease", beat="b1", lease_ms=1000, entries={})
    assert lease["leader"] is True, lease
    body = alice.control_reply("beat-lease", beat="a", lease_ms=1000, entries={})
    assert body["ok"] is False and body["error"].startswith("forbidden"), body
    body = beat.control_reply("purge")
    assert body["ok"] is False and "needs role admin" in body["error"], body
    assert beat.submit(ztp.task_message("builtin.noop", queue="from-beat")).accepted

    # clients submit and query; purge, revoke and remote control are admin's
    assert alice.control("queues")
    for op, args in (("purge", {}), ("revoke", {"id": "x"}),
                     ("broadcast", {"command": "ping", "timeout": 0.2})):
        body = alice.control_reply(op, **args)
        assert body["ok"] is False, body
        assert body["error"] == (f"forbidden: op '{op}' needs role admin; key 'alice' has role "
                                 "client"), body
    res = cluster.zmqctl("purge", "-Q", "nothing-here", env=keys.client_env("alice"))
    assert res.rc == 1 and "forbidden" in res.err, res
    root = cluster.client()
    assert root.control("purge", queue="from-beat")["purged"] == 1
    pongs = cluster.inspect("ping", timeout=2, client=root)
    assert pongs == {w.name: {"pong": True}}, pongs
    log = broker_log(cluster)
    assert "forbidden: op 'purge' needs role admin; key 'alice' has role client" in log


@pytest.mark.zt_timeout(90)
def test_a_client_key_cannot_register_as_a_worker(secure, keys):
    cluster = secure
    # the Python peer: HELLO with a client key gets ERROR forbidden
    alice = ztp.Client(cluster.broker.endpoint, curve=keys.curve("alice"))
    cluster.clients.append(alice)
    alice.send(ztp.HELLO, {"name": "sneaky@x", "queues": ["default"], "credit": 1})
    reply = alice.recv()
    assert reply.is_error and reply.code == "forbidden", reply
    assert "key 'alice' has role client; registering as a worker (HELLO) needs role worker" \
        in reply.body["reason"], reply
    # the real worker with a client key: refused, never online, both logs say why
    w = cluster.start_worker(queues=["default"], env=keys.client_env("alice"),
                             wait_online=False, name="impostor@x")
    wait_log(cluster, r"forbidden: key 'alice' has role client; registering as a worker")
    wait_log(cluster, r"the broker refuses this worker's key: key 'alice' has role client",
             proc=w.proc)
    assert not online(cluster, "impostor@x")
    assert "sneaky@x" not in {e["name"] for e in cluster.client().control("workers")}


@pytest.mark.zt_timeout(90)
def test_a_worker_identity_stays_with_its_key(cluster, keys):
    """ROUTER identities are chosen by peers. Under CURVE a live identity
    cannot be taken over (no handover), and messages for a registered
    worker's identity under another key are refused."""
    cluster.use_curve(keys, client="root")
    cluster.start_broker(heartbeat_ms=2000, liveness=3)  # wx@a below sends no heartbeats

    def dealer(key):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTING_ID, b"worker-x")
        keys.curve(key).apply(s)
        s.connect(cluster.broker.endpoint)
        return s

    def done(sock, tid):
        sock.send_multipart([ztp.SIGNATURE, bytes([ztp.DONE]),
                             ztp.pack({"id": tid, "status": "success", "runtime": 0.0})])

    ctx = zmq.Context()
    try:
        a = dealer("w1")
        a.send_multipart([ztp.SIGNATURE, bytes([ztp.HELLO]),
                          ztp.pack({"name": "wx@a", "queues": ["idq"], "credit": 1})])
        assert a.poll(5000), "no WELCOME"
        assert ztp.Reply(a.recv_multipart()).command == ztp.WELCOME
        tid = cluster.client().submit_ok("builtin.noop", queue="idq")
        assert a.poll(5000)
        assert ztp.Reply(a.recv_multipart()).command == ztp.DISPATCH

        b = dealer("w2")  # another worker key, the same identity, while a is connected
        done(b, tid)
        assert not b.poll(500), "the broker answered a connection that took a live identity"
        b.close()
        a.close()  # a leaves without BYE: wx@a stays registered until its liveness runs out

        c = dealer("w2")
        done(c, tid)
        assert c.poll(5000)
        reply = ztp.Reply(c.recv_multipart())
        assert reply.is_error and reply.code == "forbidden", reply
        assert "key 'w2' sent DONE for worker wx@a, which registered with another key" in \
            reply.body["reason"], reply
        c.close()
    finally:
        ctx.term()
    reserved = cluster.client().control("reserved")
    assert [(r["id"], r["worker"]) for r in reserved] == [(tid, "wx@a")], reserved
    # not finished by the impostor: back in its queue once wx@a is declared dead
    wait_until(lambda: any(q["name"] == "idq" and q["ready"] == 1
                           for q in cluster.client().control("queues")), 15,
               message="the task back in its queue")


@pytest.mark.zt_timeout(90)
def test_unknown_keys_and_plain_peers_are_refused_and_logged(secure, keys):
    cluster = secure
    keys.add("stranger", "worker", allow=False)
    w = cluster.start_worker(queues=["default"], env=keys.client_env("stranger"),
                             wait_online=False, name="stranger@x")
    wait_log(cluster, r"refused a connection on the clients endpoint \S+: its key is not in "
                      r"curve_allowed_dir")
    time.sleep(0.5)
    assert not online(cluster, "stranger@x") and w.proc.alive()
    res = cluster.zmqctl("--timeout", "1", "ping", env=keys.client_env("stranger"))
    assert res.rc == 3 and "CURVE" in res.err, res
    # no keys at all: refused as not CURVE
    res = cluster.zmqctl("--timeout", "1", "ping",
                         env={"ZT_CURVE_CLIENT_CERT_FILE": None, "ZT_CURVE_BROKER_KEY": None})
    assert res.rc == 3, res
    wait_log(cluster, r"refused a connection on the clients endpoint \S+: " + NOT_CURVE)
    # a right key but a wrong broker key: the handshake cannot decrypt
    res = cluster.zmqctl("--timeout", "1", "ping",
                         env={"ZT_CURVE_BROKER_KEY": str(keys.public["alice"])})
    assert res.rc == 3, res
    wait_log(cluster, r"CURVE decryption failed")


@pytest.mark.zt_timeout(90)
def test_events_need_a_key(secure, keys):
    cluster = secure
    keys.add("eve", "client", allow=False)
    plain = Events(cluster.broker.events_endpoint)
    stranger = Events(cluster.broker.events_endpoint, curve=keys.curve("eve"))
    allowed = Events(cluster.broker.events_endpoint, curve=keys.curve("alice"))
    cluster.event_streams += [plain, stranger, allowed]
    client = cluster.client()
    allowed.sync(client)
    ids = [client.submit_ok("builtin.noop", queue="ev-q") for _ in range(20)]
    allowed.wait_count("task-received", 20, ids=ids, timeout=10)
    time.sleep(0.5)
    assert plain.snapshot() == [] and stranger.snapshot() == []
    wait_log(cluster, r"refused a connection on the events endpoint \S+: " + NOT_CURVE)
    wait_log(cluster, r"refused a connection on the events endpoint \S+: its key is not in")


@pytest.mark.zt_timeout(120)
def test_sighup_cuts_off_removed_keys(secure, keys):
    cluster = secure
    w1 = cluster.start_worker(queues=["rq"], concurrency=1, env=keys.client_env("w1"))
    alice_ev = Events(cluster.broker.events_endpoint, curve=keys.curve("alice"))
    root_ev = cluster.events()
    alice = ztp.Client(cluster.broker.endpoint, curve=keys.curve("alice"))
    cluster.clients.append(alice)
    cluster.event_streams.append(alice_ev)
    root = cluster.client()
    alice_ev.sync(root)
    root_ev.sync(root)
    tid = alice.submit_ok("builtin.sleep", [3], queue="rq")
    root_ev.wait_for(lambda e: e["type"] == "task-started" and e["id"] == tid, timeout=10,
                     what="the sleep to start on w1")

    keys.revoke("w1")
    keys.revoke("alice")
    cluster.broker.proc.popen.send_signal(signal.SIGHUP)
    wait_log(cluster, r"reload: 0 keys added, 2 removed or changed")
    wait_log(cluster, rf"worker {re.escape(w1.name)} cut off: its key was withdrawn "
                      r"\(1 tasks in flight requeued\)")
    assert not online(cluster, w1.name)
    # its task went back to the queue: another worker finishes it
    w2 = cluster.start_worker(queues=["rq"], concurrency=1, env=keys.client_env("w2"))
    assert cluster.wait_result(tid, timeout=30)["status"] == "SUCCESS"
    # the revoked worker stays cut off: it is not listed again, and says why
    wait_log(cluster, "the broker refuses this worker's key", proc=w1.proc)
    assert not online(cluster, w1.name) and online(cluster, w2.name)

    # the client is refused from its next message on
    alice.send(ztp.CONTROL, {"req": 99, "op": "queues"})
    r = alice.recv()
    assert r.is_error and r.code == "forbidden" and "not among the broker's allowed" in \
        r.body["reason"], r
    res = cluster.zmqctl("--timeout", "2", "queues", env=keys.client_env("alice"))
    assert res.rc != 0, res

    # events: the revoked subscriber hears nothing more, an allowed one does
    root_ev.sync(root, timeout=15)  # reconnected after the events socket was rebound
    n_before = len(alice_ev.snapshot())
    ids = [root.submit_ok("builtin.noop", queue="after-revoke") for _ in range(10)]
    root_ev.wait_count("task-received", 10, ids=ids, timeout=10)
    time.sleep(0.5)
    assert len(alice_ev.snapshot()) == n_before
    assert not [e for e in alice_ev.snapshot() if e.get("id") in ids]

    # allowing the key again (and SIGHUP) lets it back in
    keys.allow("alice")
    cluster.broker.proc.popen.send_signal(signal.SIGHUP)
    wait_log(cluster, r"reload: 1 keys added, 0 removed or changed")
    assert alice.control("ping")["pong"] is True


# ---------------------------------------------------------------------------
# plain mode refuses to serve other machines; bad settings are refused


def run_broker(tmp_path, *args, env=None, timeout=15):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ZT_CURVE_")}
    e.update(env or {})
    return subprocess.run([binary("zmqbroker"), "--data-dir", str(tmp_path / "bd"),
                           "--loglevel", LOGLEVEL, *args], capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("endpoint", ["tcp://*:{port}", "tcp://0.0.0.0:{port}",
                                      "tcp://eth0:{port}"])
def test_plain_broker_refuses_non_loopback_binds(tmp_path, endpoint):
    port = free_port()
    ep = endpoint.format(port=port)
    p = run_broker(tmp_path, "--bind", ep, "--events-bind", f"tcp://127.0.0.1:{free_port()}")
    assert p.returncode != 0, p
    assert f"refusing to bind {ep} without CURVE" in p.stderr and "--insecure" in p.stderr, \
        p.stderr
    p = run_broker(tmp_path, "--bind", f"tcp://127.0.0.1:{port}", "--events-bind", ep)
    assert p.returncode != 0 and f"refusing to bind {ep}" in p.stderr, p.stderr


def test_broker_defaults_to_loopback():
    p = subprocess.run([binary("zmqbroker"), "--help"], capture_output=True, text=True,
                       timeout=10)
    assert "(default tcp://127.0.0.1:5555)" in p.stdout and "--insecure" in p.stdout, p.stdout
    assert "tcp://*" not in p.stdout


@pytest.mark.zt_timeout(60)
def test_bad_curve_settings_are_refused_clearly(cluster, keys, tmp_path):
    port, eport = free_port(), free_port()
    binds = ["--bind", f"tcp://127.0.0.1:{port}", "--events-bind", f"tcp://127.0.0.1:{eport}"]
    # a server certificate without the allowed folder
    p = run_broker(tmp_path, *binds, env={"ZT_CURVE_SERVER_CERT_FILE": str(keys.broker_secret)})
    assert p.returncode != 0 and "curve_allowed_dir is not" in p.stderr, p.stderr
    # a public certificate where the secret one is needed (alone: czmq would
    # read NAME.key_secret when it lies beside NAME.key)
    lone = tmp_path / "lone" / "broker.key"
    lone.parent.mkdir()
    lone.write_bytes(keys.broker_public.read_bytes())
    p = run_broker(tmp_path, *binds, env={"ZT_CURVE_SERVER_CERT_FILE": str(lone),
                                          "ZT_CURVE_ALLOWED_DIR": str(keys.allowed)})
    assert p.returncode != 0 and "holds no secret key" in p.stderr, p.stderr
    # a folder that does not exist
    p = run_broker(tmp_path, *binds, env={"ZT_CURVE_SERVER_CERT_FILE": str(keys.broker_secret),
                                          "ZT_CURVE_ALLOWED_DIR": str(tmp_path / "nope")})
    assert p.returncode != 0 and "cannot be read" in p.stderr, p.stderr
    # clients: a missing certificate, a broker key that is neither key nor file
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_CURVE_")}
    for extra, words in (({"ZT_CURVE_CLIENT_CERT_FILE": str(tmp_path / "missing.key_secret"),
                           "ZT_CURVE_BROKER_KEY": str(keys.broker_public)}, "missing.key_secret"),
                         ({"ZT_CURVE_CLIENT_CERT_FILE": str(keys.secret["alice"]),
                           "ZT_CURVE_BROKER_KEY": "not-a-key"}, "curve_broker_key"),
                         ({"ZT_CURVE_BROKER_KEY": str(keys.broker_public)}, "curve_client_cert")):
        r = subprocess.run([binary("zmqctl"), "-b", f"tcp://127.0.0.1:{port}", "ping"],
                           capture_output=True, text=True, timeout=15, env={**env, **extra})
        assert r.returncode == 2 and words in r.stderr, (extra, r.stderr)
        assert keys.key("alice") not in r.stderr
        w = subprocess.run([binary("zmqworker"), "-b", f"tcp://127.0.0.1:{port}", "-c", "1"],
                           capture_output=True, text=True, timeout=15, env={**env, **extra})
        assert w.returncode != 0 and words in w.stderr, (extra, w.stderr)
    # a secret certificate others can read works, with a warning
    loose = tmp_path / "loose.key_secret"
    loose.write_bytes(keys.secret["alice"].read_bytes())
    loose.chmod(0o644)
    r = subprocess.run([binary("zmqctl"), "-b", f"tcp://127.0.0.1:{port}", "--timeout", "0.2",
                        "ping"], capture_output=True, text=True, timeout=15,
                       env={**env, "ZT_CURVE_CLIENT_CERT_FILE": str(loose),
                            "ZT_CURVE_BROKER_KEY": str(keys.broker_public)})
    assert r.returncode == 3 and "can be read by other users (mode 0644)" in r.stderr, r.stderr


@pytest.mark.zt_timeout(90)
def test_zmqbeat_needs_a_beat_key(secure, keys, tmp_path):
    cluster = secure
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("entries:\n  tick:\n    task: builtin.noop\n    every: 1s\n"
                        "    queue: beat-q\n")

    def beat(name, key):
        log = cluster.dir / f"{name}.log"
        proc = subprocess.Popen(
            [binary("zmqbeat"), "--schedule", str(schedule), "-n", name, "--lease-ms", "2000",
             "--loglevel", LOGLEVEL, "--logfile", str(log)],
            env=cluster.env(keys.client_env(key)), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return proc, log

    impostor, ilog = beat("beat-alice", "alice")
    good, glog = beat("beat-ok", "beat1")
    try:
        root = cluster.client()
        wait_until(lambda: root.control("beat")["leader"] == "beat-ok", 15, interval=0.1,
                   message="the beat key to lead")
        wait_until(lambda: any(q["name"] == "beat-q" and q["ready"] >= 1
                               for q in root.control("queues")), 15, interval=0.1,
                   message="a periodic run sent")
        wait_until(lambda: ilog.exists() and "the broker refuses this beat's key (forbidden: "
                   "op 'beat-lease' needs role beat; key 'alice' has role client)"
                   in ilog.read_text(), 10, message="zmqbeat with a client key to say why")
        wait_log(cluster, r"forbidden: op 'beat-lease' needs role beat; key 'alice'")
    finally:
        for p in (impostor, good):
            p.send_signal(signal.SIGTERM)
        codes = []
        for p in (impostor, good):
            try:
                codes.append(p.wait(15))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait(5))
        assert codes == [0, 0], codes
