"""Helpers for the Drive2 end-to-end tests (test_drive2.py): a private
PostgreSQL 15 server, sample files made here (a PDF written by hand, a JPEG
with an EXIF block built byte by byte), and a runner for the drive2 CLI with
a clean Drive2 environment.

PostgreSQL: initdb refuses root, so it runs as user postgres (runuser) in a
folder of its own owned by postgres, with a private socket folder and a free
loopback port; stop() (or the context manager) always stops and removes it. Without root or the
server binaries the tests that need it skip, unless ZT_REQUIRE_POSTGRES=1.
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")

# Settings the Drive2 programs read from the environment: cleared for every
# test so the outer environment cannot point a test at another service.
DRIVE2_ENV = ("DRIVE2_DATA_DIR", "STORAGE_URL", "S3_ENDPOINT", "S3_REGION", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY_FILE", "DATABASE_URL",
              "GEMINI_API_KEY", "GEMINI_API_KEY_FILE", "GEMINI_BASE_URL", "QDRANT_URL",
              "QDRANT_API_KEY", "QDRANT_API_KEY_FILE")


def drive2_env(extra=None):
    """An env overlay for Cluster.env(): every Drive2 variable removed, then extra."""
    env = {k: None for k in DRIVE2_ENV}
    env.update(extra or {})
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1:<free port>, in its own
    folder under /tmp (not pytest's tmp_path: pytest resets its root to mode
    0700 whenever a session starts, which would lock user postgres out);
    removed by stop()."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="zt-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.port = None
        self.started = False

    @staticmethod
    def available():
        return os.geteuid() == 0 and (PG_BIN / "initdb").exists() and shutil.which("runuser")

    def _as_postgres(self, *argv, timeout=60):
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)],
                              capture_output=True, text=True, timeout=timeout)

    def start(self):
        self.data.mkdir()
        self.sock.mkdir()
        os.chmod(self.dir, 0o755)
        subprocess.run(["chown", "-R", "postgres", str(self.dir)], check=True)
        r = self._as_postgres(PG_BIN / "initdb", "-D", self.data, "-U", "postgres",
                              "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr}")
        for _ in range(3):
            self.port = free_port()
            r = self._as_postgres(
                PG_BIN / "pg_ctl", "-D", self.data, "-l", self.data / "server.log", "-w", "-t",
                "30", "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.sock} -c fsync=off", "start")
            if r.returncode == 0:
                self.started = True
                return self
        raise RuntimeError(f"pg_ctl start failed: {r.stderr}")

    def url(self, db="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        """Runs sql; returns stdout (unaligned, tuples only)."""
        r = self._as_postgres("/usr/bin/psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p",
                              self.port, "-U", "postgres", "-d", db, "-c", sql)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def stop(self):
        if self.started:
            self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()  # a half-started server and its folder go too
            raise

    def __exit__(self, *exc):
        self.stop()


def postgres_or_skip():
    if not PostgresServer.available():
        if os.environ.get("ZT_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL tests need root and " + str(PG_BIN), pytrace=False)
        pytest.skip("PostgreSQL tests need root and " + str(PG_BIN))
    return PostgresServer()


# ---------------------------------------------------------------------------
# sample files


def make_pdf(lines):
    """A one-page PDF showing lines (Helvetica, a base-14 font: no font file)."""
    content = "BT /F1 18 Tf 72 720 Td 22 TL\n" + "".join(
        "(%s) Tj T*\n" % line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        for line in lines) + "ET\n"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        "<< /Length %d >>\nstream\n%sendstream" % (len(content), content),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body.encode("latin-1"))
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return out


# A 96x64 grey gradient, baseline JPEG, no metadata (made once with libvips).
BASE_JPEG = base64.b64decode(
    "/9j/2wBDABQODxIPDRQSEBIXFRQYHjIhHhwcHj0sLiQySUBMS0dARkVQWnNiUFVtVkVGZIhlbXd7gYKBTmCNl4x9lnN+gXz/"
    "wAALCABAAGABAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQR"
    "BRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZn"
    "aGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo"
    "6erx8vP09fb3+Pn6/9oACAEBAAA/AONFPFSCninininipBTxTxTxTxXOCnipBTxTxTxTxUgp4p4p4p4rnBTxUgp4p4p4p4qQ"
    "U8U8U8U8Vzgp4qQU8U8U8U8VIKeKeKeKeK5wU8VIKeKeKeKeKkFPFPFPFPFc4KeKkFPFPFPFPFSCninininiucFPFSCninin"
    "inipBTxTxTxTxXOCnipBTxTxTxTxUgp4p4p4p4r/2Q==")


def _ifd(entries, start):
    """A little-endian TIFF IFD at offset start: (tag, type, count, value
    bytes) entries, values over 4 bytes placed right after it."""
    out = struct.pack("<H", len(entries))
    data = b""
    data_at = start + 2 + 12 * len(entries) + 4
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            out += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            out += struct.pack("<HHII", tag, typ, count, data_at + len(data))
            data += value + (b"\0" if len(value) % 2 else b"")
    return out + struct.pack("<I", 0) + data


def make_jpeg_with_exif(make, model, date, orientation=1):
    """BASE_JPEG with an APP1 EXIF block: Make, Model, Orientation and
    DateTimeOriginal ("YYYY:MM:DD HH:MM:SS") in the Exif sub-IFD."""
    def ascii(s):
        b = s.encode() + b"\0"
        return (len(b), b)

    ifd0 = [(0x010F, 2) + ascii(make), (0x0110, 2) + ascii(model),
            (0x0112, 3, 1, struct.pack("<H", orientation))]
    # the Exif IFD follows IFD0 and its data; its offset goes in IFD0 itself
    size0 = len(_ifd(ifd0 + [(0x8769, 4, 1, b"\0\0\0\0")], 8))
    exif_at = 8 + size0
    tiff = b"II*\0" + struct.pack("<I", 8)
    tiff += _ifd(ifd0 + [(0x8769, 4, 1, struct.pack("<I", exif_at))], 8)
    tiff += _ifd([(0x9003, 2) + ascii(date)], exif_at)
    payload = b"Exif\0\0" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return BASE_JPEG[:2] + app1 + BASE_JPEG[2:]


# ---------------------------------------------------------------------------
# the CLI


class Drive2:
    """Runs build/bin/drive2 with the cluster's broker and backend and the
    given Drive2 environment, in the cluster's folder (where the workers run,
    so the default ./drive2-data is shared)."""

    def __init__(self, cluster, env=None):
        self.cluster = cluster
        self.env = drive2_env(env)

    def run(self, *args, timeout=60, json_out=True):
        from conftest import SANITIZER_PATTERNS, binary
        argv = [binary("drive2")] + (["--json"] if json_out else []) + [str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=self.cluster.env(self.env), cwd=self.cluster.dir,
                           stdin=subprocess.DEVNULL)
        if SANITIZER_PATTERNS.search(p.stderr):
            self.cluster.problems.append(f"sanitizer report from drive2 {args}:\n{p.stderr}")
        data = None
        if json_out and p.stdout.strip():
            data = json.loads(p.stdout.strip().splitlines()[-1])
        return p.returncode, data, p

    def upload(self, path, *extra):
        rc, data, p = self.run("upload", path, *extra)
        assert rc == 0, f"upload {path}: rc {rc}, {p.stdout} {p.stderr}"
        return data

    def status(self, file_id, wait=None):
        args = ["status", file_id] + (["--wait", wait] if wait is not None else [])
        rc, data, p = self.run(*args)
        assert rc in (0, 3), f"status {file_id}: rc {rc}, {p.stdout} {p.stderr}"
        return data

    def wait_final(self, file_id, timeout=60):
        data = self.status(file_id, wait=timeout)
        assert data["processing_status"] in ("completed", "failed"), data
        return data
