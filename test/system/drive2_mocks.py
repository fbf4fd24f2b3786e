"""Servers for the Drive2 service tests (test_drive2_services.py, test_drive2.py).

- S3Server: the real S3-protocol server test/system/s3server.js (npm
  @20minutes/s3rver 4.0.4, installed by tools/install-deps), which verifies
  AWS SigV4 signatures. Credentials S3RVER / S3RVER.
- GeminiMock: a stdlib http.server standing in for the Gemini REST API
  (generateContent, embedContent). It checks each request's path, method,
  x-goog-api-key header and JSON body against the documented format, answers
  in the documented format, can answer 429 + Retry-After the first N times,
  and records every request (bodies kept, the key only as "matched or not").
- QdrantMock: the same for Qdrant's REST API (collections, points upsert,
  points search), with an in-memory cosine search so answers are real.

Every server binds 127.0.0.1 on an ephemeral port, runs in a daemon thread,
stops itself after `lifetime` seconds at most and on stop(); use them as
context managers. A request that breaks the documented format gets a 400
with the reason and is recorded in .errors, which the tests assert empty.
"""
import json
import math
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ZT_BIN_DIR") or REPO / "build" / "bin")


def probe_path():
    return BIN_DIR / "zt-drive2-probe"


class S3Server:
    """node test/system/s3server.js on a free loopback port."""

    ACCESS_KEY = "S3RVER"
    SECRET = "S3RVER"

    def __init__(self, directory, bucket="drive2", lifetime=600, key_pair=None):
        self.directory = Path(directory)
        self.bucket = bucket
        self.lifetime = lifetime
        self.proc = None
        self.port = None
        if key_pair:  # (access key id, secret) accepted besides S3RVER's
            self.ACCESS_KEY, self.SECRET = key_pair
        self.key_pair = key_pair

    def start(self, timeout=20):
        node = shutil.which("node")
        if not node:
            raise RuntimeError("node is not installed (tools/install-deps installs nodejs)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [node, str(Path(__file__).with_name("s3server.js")), "--directory",
             str(self.directory), "--bucket", self.bucket, "--port", "0",
             "--max-seconds", str(self.lifetime)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **({"S3SERVER_KEY_PAIR": ":".join(self.key_pair)}
                                  if self.key_pair else {})})
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not line[0]:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"s3server.js did not start: {err.strip()}")
        self.port = json.loads(line[0])["port"]
        return self

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self, secret=None):
        return {"STORAGE_URL": f"s3://{self.bucket}", "S3_ENDPOINT": self.endpoint,
                "S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": secret if secret is not None else self.SECRET}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr) if self.proc else ():
            if f:
                f.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _MockServer:
    """Base: a ThreadingHTTPServer on 127.0.0.1:0 whose handler calls
    self.handle(method, path, headers, body) -> (status, headers, body)."""

    def __init__(self, lifetime=300):
        self.lifetime = lifetime
        self.requests = []  # dicts: method, path, headers (secrets elided), json
        self.errors = []  # format violations seen
        self.lock = threading.Lock()
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    status, headers, out = mock._dispatch(self.command, self.path, self.headers,
                                                          body)
                except Exception as e:  # a bug in the mock must show, not hang
                    status, headers, out = 500, {}, json.dumps({"mock": repr(e)}).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = None
        self.timer = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.timer = threading.Timer(self.lifetime, self.stop)
        self.timer.daemon = True
        self.timer.start()
        return self

    def stop(self):
        if self.timer:
            self.timer.cancel()
        if self.thread:
            self.httpd.shutdown()
            self.thread.join(5)
            self.thread = None
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _bad(self, why):
        with self.lock:
            self.errors.append(why)
        return 400, {"Content-Type": "application/json"}, json.dumps(
            {"error": {"code": 400, "message": why, "status": "INVALID_ARGUMENT"}}).encode()

    def _json(self, status, obj, extra=None):
        h = {"Content-Type": "application/json"}
        h.update(extra or {})
        return status, h, json.dumps(obj).encode()

    def _dispatch(self, method, path, headers, body):
        raise NotImplementedError


GEMINI_KEY_HEADER = "x-goog-api-key"


class GeminiMock(_MockServer):
    """Gemini REST API (v1beta) stand-in.

    POST /v1beta/models/{model}:generateContent -> candidates[0].content.parts[0].text
      holding the JSON analysis (self.analysis, or self.raw_text when set: a bad answer).
    POST /v1beta/models/{model}:embedContent -> {"embedding": {"values": [...]}}, a
      deterministic vector of self.dim floats derived from the text.
    fail_429: answer that many requests (any path) with 429 + Retry-After first.
    """

    def __init__(self, api_key, model="gemini-1.5-flash", embed_model="text-embedding-004",
                 dim=8, lifetime=300):
        super().__init__(lifetime)
        self.api_key = api_key
        self.model = model
        self.embed_model = embed_model
        self.dim = dim
        self.fail_429 = 0
        self.retry_after = "1"
        self.fail_500 = 0
        self.raw_text = None  # set: generateContent answers this text instead of JSON
        self.raw_body = None  # set: the whole HTTP body instead of the documented shape
        self.analysis = {"filename": "quarterly-report.txt",
                         "summary": "A quarterly report on sales.",
                         "tags": ["Finance", "report", "q3"]}

    def _check_generate(self, body):
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return "contents must be a non-empty array"
        parts = contents[0].get("parts")
        if not isinstance(parts, list) or not parts:
            return "contents[0].parts must be a non-empty array"
        for p in parts:
            if not isinstance(p, dict) or len(p) != 1:
                return "each part holds exactly one of text / inlineData"
            if "text" in p and not isinstance(p["text"], str):
                return "part.text must be a string"
            if "inlineData" in p:
                d = p["inlineData"]
                if set(d) != {"mimeType", "data"} or not d["mimeType"].startswith("image/"):
                    return "inlineData needs mimeType and data"
                import base64
                try:
                    base64.b64decode(d["data"], validate=True)
                except Exception:
                    return "inlineData.data is not base64"
            elif "text" not in p:
                return f"unknown part {sorted(p)}"
        gc = body.get("generationConfig") or {}
        if gc.get("responseMimeType") != "application/json":
            return "generationConfig.responseMimeType must be application/json"
        schema = gc.get("responseSchema") or {}
        props = schema.get("properties") or {}
        if schema.get("type") != "OBJECT" or set(props) != {"filename", "summary", "tags"}:
            return "responseSchema must be an OBJECT with filename, summary, tags"
        if props["tags"].get("type") != "ARRAY" or props["tags"].get("items", {}).get(
                "type") != "STRING":
            return "responseSchema.tags must be an ARRAY of STRING"
        return None

    def _check_embed(self, body):
        if body.get("model") != f"models/{self.embed_model}":
            return f"model must be models/{self.embed_model}"
        parts = (body.get("content") or {}).get("parts")
        if not isinstance(parts, list) or not parts or not all(
                isinstance(p.get("text"), str) for p in parts):
            return "content.parts must be text parts"
        if body.get("taskType") not in (None, "RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY",
                                        "SEMANTIC_SIMILARITY"):
            return "unknown taskType"
        return None

    def vector_for(self, text):
        import hashlib
        h = hashlib.sha256(text.encode()).digest()
        return [(h[i % len(h)] - 128) / 128.0 + 0.01 for i in range(self.dim)]

    def _dispatch(self, method, path, headers, body):
        key_ok = headers.get(GEMINI_KEY_HEADER) == self.api_key
        try:
            doc = json.loads(body or b"null")
        except ValueError:
            doc = None
        rec = {"method": method, "path": path, "key_ok": key_ok,
               "content_type": headers.get("Content-Type"), "json": doc,
               "query": "?" in path}
        with self.lock:
            self.requests.append(rec)
            if self.fail_429 > 0:
                self.fail_429 -= 1
                return self._json(429, {"error": {"code": 429, "message": "Resource exhausted",
                                                  "status": "RESOURCE_EXHAUSTED"}},
                                  {"Retry-After": self.retry_after})
            if self.fail_500 > 0:
                self.fail_500 -= 1
                return self._json(503, {"error": {"code": 503, "message": "overloaded",
                                                  "status": "UNAVAILABLE"}})
        if method != "POST":
            return self._bad(f"{method} {path}: only POST is documented")
        if "?" in path:
            return self._bad("the key belongs in the x-goog-api-key header, not the URL")
        if not key_ok:
            return self._json(400, {"error": {"code": 400, "message": "API key not valid. "
                                              "Please pass a valid API key.",
                                              "status": "INVALID_ARGUMENT"}})
        if not (headers.get("Content-Type") or "").startswith("application/json"):
            return self._bad("Content-Type must be application/json")
        if not isinstance(doc, dict):
            return self._bad("the body must be a JSON object")
        if self.raw_body is not None:
            return 200, {"Content-Type": "application/json"}, self.raw_body.encode()
        if path == f"/v1beta/models/{self.model}:generateContent":
            why = self._check_generate(doc)
            if why:
                return self._bad(why)
            text = self.raw_text if self.raw_text is not None else json.dumps(self.analysis)
            return self._json(200, {
                "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 20,
                                  "totalTokenCount": 30},
                "modelVersion": self.model})
        if path == f"/v1beta/models/{self.embed_model}:embedContent":
            why = self._check_embed(doc)
            if why:
                return self._bad(why)
            text = " ".join(p["text"] for p in doc["content"]["parts"])
            return self._json(200, {"embedding": {"values": self.vector_for(text)}})
        return self._json(404, {"error": {"code": 404, "message": f"{path} not found",
                                          "status": "NOT_FOUND"}})

    def count(self, suffix):
        with self.lock:
            return sum(1 for r in self.requests if r["path"].endswith(suffix))


class QdrantMock(_MockServer):
    """Qdrant REST API stand-in: collections (GET/PUT), points upsert (PUT
    /collections/{c}/points), points search (POST /collections/{c}/points/search),
    with an in-memory cosine search. api_key: the api-key header required (None:
    none expected)."""

    def __init__(self, api_key=None, lifetime=300):
        super().__init__(lifetime)
        self.api_key = api_key
        self.collections = {}  # name -> {"size": n, "points": {id: (vector, payload)}}

    def _ok(self, result):
        return self._json(200, {"result": result, "status": "ok", "time": 0.0001})

    def _dispatch(self, method, path, headers, body):
        import re
        import uuid
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        with self.lock:
            self.requests.append({"method": method, "path": path, "json": doc,
                                  "key_ok": headers.get("api-key") == self.api_key})
        if self.api_key is not None and headers.get("api-key") != self.api_key:
            return self._json(401, {"status": {"error": "Must provide an API key"}})
        if self.api_key is None and headers.get("api-key") is not None:
            return self._bad("api-key sent although QDRANT_API_KEY is not set")
        route = path.split("?")[0]
        m = re.fullmatch(r"/collections/([A-Za-z0-9_-]+)(/points(/search)?)?", route)
        if not m:
            return self._json(404, {"status": {"error": f"{route} not found"}})
        name, points, search = m.group(1), m.group(2), m.group(3)
        coll = self.collections.get(name)
        if not points:
            if method == "GET":
                if not coll:
                    return self._json(404, {"status": {
                        "error": f"Not found: Collection `{name}` doesn't exist!"}})
                return self._ok({"status": "green", "config": {"params": {"vectors": {
                    "size": coll["size"], "distance": "Cosine"}}}, "points_count": len(
                        coll["points"])})
            if method == "PUT":
                v = (doc or {}).get("vectors") or {}
                if not isinstance(v.get("size"), int) or v.get("distance") != "Cosine":
                    return self._bad("create collection: vectors {size:int, distance:Cosine}")
                if coll:
                    return self._json(409, {"status": {"error": "already exists"}})
                self.collections[name] = {"size": v["size"], "points": {}}
                return self._ok(True)
            return self._bad(f"{method} {route}")
        if not coll:
            return self._json(404, {"status": {
                "error": f"Not found: Collection `{name}` doesn't exist!"}})
        if not search:
            if method != "PUT":
                return self._bad("upsert is PUT /collections/{name}/points")
            pts = (doc or {}).get("points")
            if not isinstance(pts, list) or not pts:
                return self._bad("upsert: points must be a non-empty array")
            for p in pts:
                try:
                    pid = str(uuid.UUID(p["id"]))
                except (KeyError, ValueError, TypeError, AttributeError):
                    return self._bad("point id must be a UUID string")
                vec = p.get("vector")
                if not isinstance(vec, list) or len(vec) != coll["size"]:
                    return self._bad(f"vector must have {coll['size']} floats")
                if not isinstance(p.get("payload"), dict) or "file_id" not in p["payload"]:
                    return self._bad("payload must carry file_id")
                coll["points"][pid] = (vec, p["payload"])
            return self._ok({"operation_id": 1, "status": "completed"})
        if method != "POST":
            return self._bad("search is POST /collections/{name}/points/search")
        vec, limit = (doc or {}).get("vector"), (doc or {}).get("limit")
        if not isinstance(vec, list) or len(vec) != coll["size"] or not isinstance(limit, int):
            return self._bad(f"search: vector of {coll['size']} floats and integer limit")
        if doc.get("with_payload") is not True:
            return self._bad("search: with_payload must be true to get file ids")

        def cos(a, b):
            na = math.sqrt(sum(x * x for x in a)) or 1
            nb = math.sqrt(sum(x * x for x in b)) or 1
            return sum(x * y for x, y in zip(a, b)) / na / nb

        scored = sorted(((cos(vec, v), pid, pl) for pid, (v, pl) in coll["points"].items()),
                        reverse=True)[:limit]
        return self._ok([{"id": pid, "version": 1, "score": s, "payload": pl}
                         for s, pid, pl in scored])
