"""A stand-in for the LINE Messaging API's push endpoint, for test_media.py.

It checks every request against LINE's documented format and answers the
way LINE does:
- POST /v2/bot/message/push only (anything else: 404 / 405);
- headers: Authorization "Bearer <token>" (401 otherwise), Content-Type
  application/json, X-Line-Retry-Key a UUID in hexadecimal form (we require
  it on every push);
- body: {"to": a user/group/room id, "messages": 1..5 message objects};
  flex messages need altText (1..400 UTF-16 code units, the bound Drive2
  keeps to) and a bubble container whose JSON is at most 30 KB; components
  are walked: boxes need a layout and a contents list, texts a non-empty
  text, images an https URL of at most 2000 characters, separators nothing;
  unknown component types and empty boxes are errors;
- a retry key already accepted gets 409 with x-line-accepted-request-id
  (LINE's "this request was already accepted"), so a retried push is never
  delivered twice;
- fail_next(status, count, retry_after=None) makes the next `count`
  well-formed pushes answer 429 or 5xx (with Retry-After when given).

Violations answer 400 {"message", "details": [{"message", "property"}]} as
LINE does and are kept in .errors, which tests assert empty. Accepted pushes
are in .delivered (one per retry key), every request in .requests (the token
is recorded only as matched or not). Binds 127.0.0.1 on a free port, serves
from a daemon thread, stops on stop() or after `lifetime` seconds.
"""
import json
import re
import threading
import time
import uuid

from drive2_mocks import _MockServer

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TO_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ALT_TEXT_MAX = 400
BUBBLE_MAX = 30 * 1000  # bytes of one bubble's JSON ("30 KB")
URL_MAX = 2000
COMPONENTS = {"box", "text", "image", "separator", "button", "icon", "span", "filler", "video"}


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


class LineMock(_MockServer):
    def __init__(self, token="test-channel-token", lifetime=300):
        super().__init__(lifetime)
        self.token = token
        self.delivered = []  # accepted pushes: {retry_key, to, messages, request_id}
        self._accepted = {}  # retry key -> request id
        self._fail = []      # [(status, retry_after)] for the next pushes

    def _dispatch(self, method, path, headers, body):
        status, extra, answer = self._handle(method, path, headers, body)
        return self._json(status, answer, extra)

    # -- control --------------------------------------------------------

    def env(self):
        """Environment for workers: the API base and the token."""
        return {"LINE_API_BASE_URL": self.url, "LINE_CHANNEL_ACCESS_TOKEN": self.token}

    def fail_next(self, status, count=1, retry_after=None):
        with self.lock:
            self._fail.extend([(status, retry_after)] * count)

    def wait_delivered(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.delivered) >= count:
                    return list(self.delivered)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.delivered)} pushes delivered, wanted {count} "
                             f"(errors: {self.errors})")

    def pushes(self, kind_text=None):
        """Delivered pushes, optionally only those whose altText contains kind_text."""
        with self.lock:
            out = list(self.delivered)
        if kind_text:
            out = [d for d in out if kind_text in d["messages"][0].get("altText", "")]
        return out

    # -- checking -------------------------------------------------------

    def _error(self, problems, where):
        with self.lock:
            self.errors.extend(f"{where}: {p['property']}: {p['message']}" for p in problems)
        return (400, {}, {"message": f"The request body has {len(problems)} error(s)",
                          "details": problems})

    def _walk(self, node, prop, problems):
        if not isinstance(node, dict):
            problems.append({"message": "must be an object", "property": prop})
            return
        t = node.get("type")
        if t not in COMPONENTS:
            problems.append({"message": f"unknown component type {t!r}", "property": prop})
            return
        if t == "box":
            if node.get("layout") not in ("horizontal", "vertical", "baseline"):
                problems.append({"message": "invalid layout", "property": prop + ".layout"})
            contents = node.get("contents")
            if not isinstance(contents, list) or not contents:
                problems.append({"message": "must be a non-empty array",
                                 "property": prop + ".contents"})
                return
            for i, c in enumerate(contents):
                self._walk(c, f"{prop}.contents[{i}]", problems)
        elif t == "text":
            text = node.get("text")
            if not isinstance(text, str) or not text:
                problems.append({"message": "must not be empty", "property": prop + ".text"})
            for key in ("wrap",):
                if key in node and not isinstance(node[key], bool):
                    problems.append({"message": "must be a boolean", "property": f"{prop}.{key}"})
            if "flex" in node and not isinstance(node["flex"], int):
                problems.append({"message": "must be an integer", "property": prop + ".flex"})
        elif t == "image":
            url = node.get("url")
            if not isinstance(url, str) or not url.startswith("https://") or len(url) > URL_MAX:
                problems.append({"message": "must be an https URL of at most 2000 characters",
                                 "property": prop + ".url"})
            elif not re.search(r"\.(jpe?g|png)$", url.split("?")[0], re.I):
                problems.append({"message": "must be a JPEG or PNG image",
                                 "property": prop + ".url"})

    def _check_message(self, m, prop, problems):
        if not isinstance(m, dict) or m.get("type") not in ("flex", "text"):
            problems.append({"message": "unsupported message type", "property": prop + ".type"})
            return
        if m["type"] == "text":
            text = m.get("text")
            if not isinstance(text, str) or not 1 <= utf16_len(text) <= 5000:
                problems.append({"message": "length must be 1-5000", "property": prop + ".text"})
            return
        alt = m.get("altText")
        if not isinstance(alt, str) or not 1 <= utf16_len(alt) <= ALT_TEXT_MAX:
            problems.append({"message": f"length must be between 1 and {ALT_TEXT_MAX}",
                             "property": prop + ".altText"})
        contents = m.get("contents")
        if not isinstance(contents, dict) or contents.get("type") != "bubble":
            problems.append({"message": "must be a bubble", "property": prop + ".contents"})
            return
        size = len(json.dumps(contents, separators=(",", ":"), ensure_ascii=False).encode())
        if size > BUBBLE_MAX:
            problems.append({"message": f"size must be at most 30KB (is {size} bytes)",
                             "property": prop + ".contents"})
        for block in ("header", "hero", "body", "footer"):
            if block in contents:
                self._walk(contents[block], f"{prop}.contents.{block}", problems)
        if "body" not in contents and "hero" not in contents:
            problems.append({"message": "a bubble needs a body or a hero",
                             "property": prop + ".contents"})
        extra = set(contents) - {"type", "size", "direction", "header", "hero", "body", "footer",
                                 "styles", "action"}
        if extra:
            problems.append({"message": f"unknown bubble fields {sorted(extra)}",
                             "property": prop + ".contents"})

    def _handle(self, method, path, headers, body):
        auth = headers.get("Authorization") or ""
        key = headers.get("X-Line-Retry-Key")
        record = {"method": method, "path": path, "retry_key": key,
                  "token_ok": auth == f"Bearer {self.token}",
                  "content_type": headers.get("Content-Type"), "json": None, "status": None}
        with self.lock:
            self.requests.append(record)

        def answer(status, hdrs, data):
            record["status"] = status
            return status, hdrs, data

        if path != "/v2/bot/message/push":
            with self.lock:
                self.errors.append(f"unexpected path {path}")
            return answer(404, {}, {"message": "Not found"})
        if method != "POST":
            with self.lock:
                self.errors.append(f"unexpected method {method}")
            return answer(405, {}, {"message": "Method not allowed"})
        if not record["token_ok"]:
            return answer(401, {}, {"message": "Authentication failed. Confirm that the access "
                                               "token in the authorization header is valid."})
        problems = []
        if (headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            problems.append({"message": "must be application/json", "property": "Content-Type"})
        if not key or not UUID_RE.match(key):
            problems.append({"message": "must be a UUID", "property": "X-Line-Retry-Key"})
        try:
            data = json.loads(body)
        except ValueError:
            return answer(*self._error([{"message": "not JSON", "property": "body"}], path))
        record["json"] = data
        if not isinstance(data, dict):
            return answer(*self._error([{"message": "must be an object", "property": "body"}],
                                       path))
        if not isinstance(data.get("to"), str) or not TO_RE.match(data["to"]):
            problems.append({"message": "invalid id", "property": "to"})
        msgs = data.get("messages")
        if not isinstance(msgs, list) or not 1 <= len(msgs) <= 5:
            problems.append({"message": "must be 1-5 messages", "property": "messages"})
        else:
            for i, m in enumerate(msgs):
                self._check_message(m, f"messages[{i}]", problems)
        extra = set(data) - {"to", "messages", "notificationDisabled", "customAggregationUnits"}
        if extra:
            problems.append({"message": f"unknown fields {sorted(extra)}", "property": "body"})
        if problems:
            return answer(*self._error(problems, path))
        with self.lock:
            if key in self._accepted:
                return answer(409, {"x-line-accepted-request-id": self._accepted[key]},
                              {"message": "The retry key is already accepted"})
            if self._fail:
                status, retry_after = self._fail.pop(0)
                hdrs = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                msg = ("The API rate limit has been exceeded. Try again later."
                       if status == 429 else "Internal server error")
                return answer(status, hdrs, {"message": msg})
            request_id = str(uuid.uuid4())
            self._accepted[key] = request_id
            self.delivered.append({"retry_key": key, "to": data["to"], "messages": msgs,
                                   "request_id": request_id})
        return answer(200, {"x-line-request-id": request_id}, {"sentMessages": [
            {"id": str(abs(hash(request_id)) % 10**18), "quoteToken": "q"}]})
