"""ztp: an independent Python implementation of the client side of ZTP/1.

Written from docs/PROTOCOL.md alone (pyzmq DEALER + msgpack), so the system
tests check the broker against the written contract rather than against our
own C codec. Also sends arbitrary frames for the hostile-input tests.

    c = Client("tcp://127.0.0.1:5555")
    reply = c.submit(task_message("builtin.add", args=[2, 3]))
    assert reply.accepted, reply.body
    print(c.control("queues"))

With CURVE (docs/SECURITY.md), pass curve=Curve.from_files(own_secret_cert,
broker_public_cert): the socket gets the keys before it connects.
"""

import re
import time
import uuid

import msgpack
import zmq

SIGNATURE = b"ZTP01"

SUBMIT = 0x01
ACCEPTED = 0x02
REJECTED = 0x03
CONTROL = 0x04
CONTROL_REPLY = 0x05
HELLO = 0x10
WELCOME = 0x11
CREDIT = 0x12
DISPATCH = 0x13
STARTED = 0x14
PROGRESS = 0x15
DONE = 0x16
RELEASE = 0x17
REVOKE = 0x18
HEARTBEAT = 0x19
BYE = 0x1A
ERROR = 0x7F

COMMAND_NAMES = {
    SUBMIT: "SUBMIT",
    ACCEPTED: "ACCEPTED",
    REJECTED: "REJECTED",
    CONTROL: "CONTROL",
    CONTROL_REPLY: "CONTROL-REPLY",
    HELLO: "HELLO",
    WELCOME: "WELCOME",
    CREDIT: "CREDIT",
    DISPATCH: "DISPATCH",
    STARTED: "STARTED",
    PROGRESS: "PROGRESS",
    DONE: "DONE",
    RELEASE: "RELEASE",
    REVOKE: "REVOKE",
    HEARTBEAT: "HEARTBEAT",
    BYE: "BYE",
    ERROR: "ERROR",
}


class Timeout(Exception):
    """No reply arrived within the client's timeout."""


class ProtocolError(Exception):
    """The broker answered with something the spec does not allow here."""


class ControlError(Exception):
    """CONTROL-REPLY with ok: false; .error holds the broker's message."""

    def __init__(self, op, error):
        super().__init__(f"control {op!r} failed: {error}")
        self.op = op
        self.error = error


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def new_id():
    return str(uuid.uuid4())


def task_message(task, args=None, kwargs=None, **fields):
    """Builds a task message map (§7). Fields left as None are omitted; the id
    is a new UUID unless given."""
    msg = {"id": fields.pop("id", None) or new_id(), "task": task}
    if args is not None:
        msg["args"] = list(args)
    if kwargs is not None:
        msg["kwargs"] = dict(kwargs)
    for key, value in fields.items():
        if value is not None:
            msg[key] = value
    return msg


def load_cert(path):
    """(public, secret) Z85 keys of a czmq certificate file (ZPL text, as
    `zmqctl keygen` writes); secret is None in a public certificate, and a
    secret of forty zeros (czmq: none) counts as none too. Also returns the
    metadata as a dict: (public, secret, meta)."""
    text = open(path, encoding="ascii").read()
    keys, meta = {}, {}
    section = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            section = line.strip()
            continue
        m = re.match(r'\s+([\w-]+)\s*=\s*"(.*)"\s*$', line)
        if m:
            (keys if section == "curve" else meta)[m.group(1)] = m.group(2)
    secret = keys.get("secret-key")
    if secret == "0" * 40:
        secret = None
    return keys["public-key"], secret, meta


class Curve:
    """CURVE client keys for a socket: own public and secret key and the
    broker's public key, all Z85 text."""

    def __init__(self, public, secret, server):
        self.public, self.secret, self.server = public, secret, server

    @classmethod
    def from_files(cls, own_cert, broker_cert):
        public, secret, _ = load_cert(own_cert)
        server = load_cert(broker_cert)[0]
        assert secret, f"{own_cert} holds no secret key"
        return cls(public, secret, server)

    def apply(self, sock):
        sock.curve_secretkey = self.secret.encode()
        sock.curve_publickey = self.public.encode()
        sock.curve_serverkey = self.server.encode()


class Reply:
    """One decoded broker message: command byte, body (decoded map or raw
    bytes when it is not MessagePack), and the raw frames."""

    def __init__(self, frames):
        self.frames = frames
        if len(frames) < 3 or frames[0] != SIGNATURE or len(frames[1]) != 1:
            raise ProtocolError(f"not a ZTP/1 message: {frames!r}")
        self.command = frames[1][0]
        try:
            self.body = unpack(frames[2])
        except Exception as exc:  # the broker must never send this
            raise ProtocolError(f"undecodable body {frames[2]!r}: {exc}") from exc

    @property
    def name(self):
        return COMMAND_NAMES.get(self.command, f"0x{self.command:02x}")

    @property
    def accepted(self):
        return self.command == ACCEPTED

    @property
    def rejected(self):
        return self.command == REJECTED

    @property
    def is_error(self):
        return self.command == ERROR

    @property
    def code(self):
        """The error/rejection code, or None."""
        if isinstance(self.body, dict):
            return self.body.get("code")
        return None

    def __repr__(self):
        return f"<{self.name} {self.body!r}>"


class Client:
    """A ZTP/1 client over one DEALER socket. Not thread-safe."""

    def __init__(self, endpoint, timeout=5.0, context=None, curve=None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._own_ctx = context is None
        self.ctx = context or zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        if curve is not None:
            curve.apply(self.sock)
        self.sock.connect(endpoint)
        self._req = 0

    def close(self):
        self.sock.close(0)
        if self._own_ctx:
            self.ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw access -------------------------------------------------------

    def send_raw(self, frames):
        """Sends frames (a list of bytes) as one multipart message, verbatim."""
        self.sock.send_multipart([bytes(f) for f in frames])

    def send(self, command, body, extra=None):
        """Sends a well-formed ZTP message; body is packed unless bytes."""
        if not isinstance(body, (bytes, bytearray)):
            body = pack(body)
        frames = [SIGNATURE, bytes([command]), body]
        if extra is not None:
            frames.append(extra if isinstance(extra, (bytes, bytearray)) else pack(extra))
        self.send_raw(frames)

    def recv(self, timeout=None):
        """Receives one message as a Reply; raises Timeout."""
        timeout = self.timeout if timeout is None else timeout
        if not self.sock.poll(int(timeout * 1000)):
            raise Timeout(f"no reply from {self.endpoint} within {timeout} s")
        return Reply(self.sock.recv_multipart())

    def recv_raw(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if not self.sock.poll(int(timeout * 1000)):
            raise Timeout(f"no reply from {self.endpoint} within {timeout} s")
        return self.sock.recv_multipart()

    def drain(self, wait=0.0):
        """Discards whatever is waiting (up to wait seconds for the first)."""
        got = []
        while self.sock.poll(int(wait * 1000)):
            got.append(self.sock.recv_multipart())
            wait = 0
        return got

    # -- client commands ---------------------------------------------------

    def submit(self, msg, timeout=None):
        """SUBMIT a task message (a dict, or raw bytes for hostile tests);
        returns the Reply (ACCEPTED, REJECTED, or ERROR)."""
        self.send(SUBMIT, msg)
        return self.recv(timeout)

    def submit_many(self, msgs, timeout=None):
        """Pipelines SUBMITs, then reads one reply per message (§5.1 says
        replies come back in submit order). Returns the replies."""
        for m in msgs:
            self.send(SUBMIT, m)
        return [self.recv(timeout) for _ in msgs]

    def submit_ok(self, task, args=None, kwargs=None, **fields):
        """Submits and asserts ACCEPTED; returns the task id."""
        msg = task_message(task, args, kwargs, **fields)
        reply = self.submit(msg)
        if not reply.accepted:
            raise ProtocolError(f"SUBMIT {msg!r} not accepted: {reply!r}")
        if reply.body.get("id") != msg["id"]:
            raise ProtocolError(f"ACCEPTED names {reply.body.get('id')!r}, sent {msg['id']!r}")
        return msg["id"]

    def control_reply(self, op, timeout=None, **args):
        """Sends CONTROL {req, op, **args}; returns the CONTROL-REPLY body."""
        self._req += 1
        req = self._req
        body = dict(args)
        body["req"] = req
        body["op"] = op
        self.send(CONTROL, body)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"no CONTROL-REPLY to {op!r}")
            reply = self.recv(left)
            if reply.command != CONTROL_REPLY:
                raise ProtocolError(f"expected CONTROL-REPLY to {op!r}, got {reply!r}")
            if reply.body.get("req") == req:
                return reply.body
            # a stale reply to an earlier request that timed out: skip it

    def control(self, op, timeout=None, **args):
        """CONTROL op; returns its result or raises ControlError."""
        body = self.control_reply(op, timeout=timeout, **args)
        if not body.get("ok"):
            raise ControlError(op, body.get("error"))
        return body.get("result")


def wait_ping(endpoint, timeout=10.0, is_alive=None, curve=None):
    """Pings the broker at endpoint until it answers or timeout passes.
    is_alive, when given, is called between tries; a False return gives up."""
    deadline = time.monotonic() + timeout
    with Client(endpoint, timeout=0.2, curve=curve) as c:
        while time.monotonic() < deadline:
            if is_alive is not None and not is_alive():
                return False
            try:
                c.control("ping", timeout=0.2)
                return True
            except Timeout:
                continue
    return False
