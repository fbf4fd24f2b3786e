"""Issue 7 end to end: thumbnails (generate_thumbnail on queue thumbnails)
and notifications (send_processing_complete / _failed, quota alerts, the
daily summary) over a real broker, Redis and workers with the embedded
Drive2 defaults, against test/system/line_mock.py (LINE's push endpoint,
checking every request against LINE's documented formats and limits).

Pictures are made by bin/zt-media-probe (libvips), a PDF by drive2util, a
video by ffmpeg's lavfi test source; hostile files by hand here. Thumbnails
are opened again with libvips (zt-media-probe info) to check their size,
their orientation (by pixels) and that no EXIF/GPS survived.
"""
import json
import os
import sqlite3
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from conftest import binary, wait_until
from drive2util import Drive2, drive2_env, make_pdf
from line_mock import LineMock

PROCESS = "app.workers.tasks.file_processing.process_uploaded_file"
THUMBNAIL = "app.workers.tasks.thumbnails.generate_thumbnail"
COMPLETE = "app.workers.tasks.notifications.send_processing_complete"
QUOTA = "app.workers.tasks.notifications.send_storage_quota_alert"
DAILY = "app.workers.tasks.notifications.send_daily_summary"
QUEUES = ["ai_processing", "thumbnails", "notifications"]
HERO_BASE = "https://cdn.example.test/drive2"
ALICE_LINE = "U" + "a1" * 16
BOB_LINE = "U" + "b2" * 16


def media_env(extra=None):
    """Drive2's environment with every LINE/thumbnail variable cleared, then extra."""
    env = {"LINE_CHANNEL_ACCESS_TOKEN": None, "LINE_CHANNEL_ACCESS_TOKEN_FILE": None,
           "LINE_API_BASE_URL": None, "THUMBNAIL_PUBLIC_BASE_URL": None}
    env.update(extra or {})
    return drive2_env(env)


def probe(*args, check=True):
    p = subprocess.run([binary("zt-media-probe")] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, f"zt-media-probe {args}: {p.returncode} {p.stderr}"
    return json.loads(p.stdout) if p.stdout.strip() else None


def make_video(path):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=duration=2:size=640x480:rate=25", "-pix_fmt", "yuv420p",
                    "-y", str(path)], check=True, timeout=60)


def png_bomb():
    """A PNG whose header claims 100000 x 100000 pixels (30 GB decoded)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def catalog(cluster):
    return sqlite3.connect(str(cluster.dir / "drive2-data" / "catalog.db"), timeout=10)


def put_user(cluster, d2, user, quota=10737418240, line_id=None):
    """Creates (or updates) a user in the embedded catalog before its uploads."""
    d2.run("status", "no-such-file")  # opens the catalog: creates and migrates it
    with catalog(cluster) as db:
        db.execute("INSERT INTO users (id, quota_bytes, line_user_id, created_at) "
                   "VALUES (?, ?, ?, '2026-01-01T00:00:00.000000Z') ON CONFLICT (id) DO UPDATE "
                   "SET quota_bytes = excluded.quota_bytes, line_user_id = excluded.line_user_id",
                   (user, quota, line_id))


def follow_up_id(cluster, upload, name):
    meta = cluster.wait_result(upload["task_id"], timeout=60)
    return meta["result"]["follow_ups"][name]["id"], meta


def thumbnail_meta(cluster, upload, timeout=60):
    """The generate_thumbnail result of an upload: the follow-up the pipeline
    sent, or (a file the pipeline failed: no follow-up) one sent here."""
    meta = cluster.wait_result(upload["task_id"], timeout=60)
    follow = (meta.get("result") or {}).get("follow_ups", {}).get("generate_thumbnail")
    if follow:
        return cluster.wait_result(follow["id"], timeout=timeout)
    res = cluster.zmqctl("send", THUMBNAIL, "--args", json.dumps([upload["file_id"]]), "-Q",
                         "thumbnails", "--wait", str(timeout))
    return res.data


def wait_thumbnail(d2, file_id, timeout=60):
    return wait_until(lambda: (lambda s: s if s.get("thumbnail_path") else None)(
        d2.status(file_id)), timeout, interval=0.2, message=f"thumbnail of {file_id}")


# ---------------------------------------------------------------------------
# the LINE client against the mock (no cluster)


@pytest.mark.zt_timeout(60)
def test_line_push_formats_and_limits():
    """Each of the four Flex notices is accepted by the request-checking mock:
    method, path, bearer token, a UUID retry key, JSON shape and sizes."""
    with LineMock() as line:
        env = dict(os.environ, **line.env())
        for kind in ("complete", "failed", "quota", "summary"):
            hero = f"{HERO_BASE}/thumbnails/f1.jpg" if kind == "complete" else None
            p = subprocess.run([binary("zt-media-probe"), "line-push", kind, ALICE_LINE,
                                f"seed-{kind}"] + ([hero] if hero else []),
                               capture_output=True, text=True, timeout=30, env=env)
            out = json.loads(p.stdout)
            assert out["rc"] == 0 and out["status"] == 200 and out["attempts"] == 1, out
            assert out["request_id"], out
        assert line.errors == []
        assert len(line.delivered) == 4
        assert all(r["token_ok"] and r["method"] == "POST" for r in line.requests)
        complete = line.pushes("Processed:")[0]["messages"][0]
        assert complete["contents"]["hero"]["url"] == f"{HERO_BASE}/thumbnails/f1.jpg"
        assert [d["to"] for d in line.delivered] == [ALICE_LINE] * 4
        keys = {d["retry_key"] for d in line.delivered}
        assert len(keys) == 4  # one key per notice


@pytest.mark.zt_timeout(60)
def test_line_429_and_500_are_retried_with_one_retry_key():
    """429 twice (Retry-After: 1) then success: one push, three requests, one
    key, the waits honoured. 5xx past the attempts: a retryable error; the
    retry (same key) is delivered; a third try with that key gets 409 and
    counts as delivered, never as a second message."""
    with LineMock() as line:
        env = dict(os.environ, **line.env())

        def push(seed):
            p = subprocess.run([binary("zt-media-probe"), "line-push", "complete", ALICE_LINE,
                                seed], capture_output=True, text=True, timeout=60, env=env)
            return json.loads(p.stdout)

        line.fail_next(429, 2, retry_after=1)
        t0 = time.monotonic()
        out = push("retry-429")
        assert out["rc"] == 0 and out["attempts"] == 3, out
        assert time.monotonic() - t0 >= 2.0  # Retry-After honoured twice
        reqs = [r for r in line.requests if r["retry_key"] == out["retry_key"]]
        assert [r["status"] for r in reqs] == [429, 429, 200]

        line.fail_next(500, 4)
        out = push("retry-500")
        assert out["code"] == "io error" or out["rc"] != 0, out
        assert out["status"] == 500 and out["attempts"] == 4, out
        assert "will retry" in out["error"] and "Internal server error" in out["error"]
        again = push("retry-500")
        assert again["rc"] == 0 and again["status"] == 200, again
        assert again["retry_key"] == out["retry_key"]
        dup = push("retry-500")
        assert dup["rc"] == 0 and dup["status"] == 409 and dup["duplicate"] is True, dup
        assert len([d for d in line.delivered if d["retry_key"] == out["retry_key"]]) == 1
        assert line.errors == []


@pytest.mark.zt_timeout(60)
def test_line_refusals_quote_lines_message():
    """4xx other than 429 is a final failure that quotes LINE's message;
    the token is never printed."""
    with LineMock(token="right-token") as line:
        env = dict(os.environ, LINE_API_BASE_URL=line.url,
                   LINE_CHANNEL_ACCESS_TOKEN="wrong-token-do-not-print")
        p = subprocess.run([binary("zt-media-probe"), "line-push", "complete", ALICE_LINE, "s"],
                           capture_output=True, text=True, timeout=30, env=env)
        out = json.loads(p.stdout)
        assert out["status"] == 401 and out["attempts"] == 1, out  # not retried
        assert "refused" in out["error"] and "Authentication failed" in out["error"], out
        assert "wrong-token-do-not-print" not in p.stdout + p.stderr
        # a hero that LINE cannot show (WebP): LINE's 400 and its details
        env["LINE_CHANNEL_ACCESS_TOKEN"] = "right-token"
        p = subprocess.run([binary("zt-media-probe"), "line-push", "complete", ALICE_LINE, "s2",
                            f"{HERO_BASE}/thumbnails/f1.webp"],
                           capture_output=True, text=True, timeout=30, env=env)
        out = json.loads(p.stdout)
        assert out["status"] == 400, out
        assert "must be a JPEG or PNG image" in out["error"], out
        assert "contents.hero.url" in out["error"], out
        assert len(line.errors) == 1 and line.delivered == []


# ---------------------------------------------------------------------------
# the cluster


@pytest.mark.zt_timeout(240)
def test_thumbnails_and_notices_end_to_end(cluster, broker):
    """A photo (4000x3000, EXIF orientation 6, GPS), a PDF and a video get a
    thumbnail of at most 300x300 that libvips opens, upright, with no
    metadata; hostile files fail the thumbnail task cleanly and the worker
    carries on; each completed file sends one Flex push (the photo's with
    its thumbnail as hero image), the failed file one failure push."""
    with LineMock() as line:
        env = media_env(dict(line.env(), THUMBNAIL_PUBLIC_BASE_URL=HERO_BASE))
        d2 = Drive2(cluster, env)
        put_user(cluster, d2, "alice", line_id=ALICE_LINE)
        cluster.start_worker(queues=QUEUES, concurrency=2, env=env)
        src = cluster.dir / "in"
        src.mkdir()
        photo = src / "IMG_4000.JPG"
        probe("make-photo", photo, 4000, 3000, 6, "gps")
        pdf = src / "report.pdf"
        pdf.write_bytes(make_pdf(["Quarterly Sales Report", "Revenue grew."]))
        video = src / "clip.mp4"
        make_video(video)
        bomb = src / "bomb.png"
        bomb.write_bytes(png_bomb())
        truncated = src / "cut.jpg"
        truncated.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
        text_jpg = src / "diary.jpg"
        text_jpg.write_text("Dear diary, today I renamed a text file to diary.jpg.\n")
        broken_pdf = src / "broken.pdf"
        broken_pdf.write_bytes(make_pdf(["x"])[:60])

        files = [photo, pdf, video, bomb, truncated, text_jpg, broken_pdf]
        up = {f.name: d2.upload(f, "--user", "alice") for f in files}
        final = {n: d2.wait_final(u["file_id"], timeout=90) for n, u in up.items()}
        assert final["broken.pdf"]["processing_status"] == "failed"
        assert up["clip.mp4"]["mime_type"] == "video/mp4"
        assert up["diary.jpg"]["mime_type"] == "text/plain"  # content decides: no thumbnail

        # the good ones: thumbnails in the object store, recorded in the catalog
        objects = cluster.dir / "drive2-data" / "objects"
        want = {"IMG_4000.JPG": (225, 300), "report.pdf": (232, 300), "clip.mp4": (300, 225)}
        for name, (w, h) in want.items():
            fid = up[name]["file_id"]
            s = wait_thumbnail(d2, fid)
            assert s["thumbnail_path"] == f"thumbnails/{fid}.jpg", s
            info = probe("info", objects / s["thumbnail_path"])
            assert (info["width"], info["height"]) == (w, h), (name, info)
            assert info["loader"] == "jpegload" and info["bands"] == 3, info
            assert info["metadata"] == [], (name, info)  # no EXIF, no GPS, no orientation
            tid, _ = follow_up_id(cluster, up[name], "generate_thumbnail")
            meta = cluster.wait_result(tid, timeout=60)
            assert meta["status"] == "SUCCESS", meta
            assert meta["result"]["width"] == w and meta["result"]["height"] == h
        # orientation by pixels: stored left half black, turned 90 degrees
        # clockwise by the EXIF tag -> the top half is black
        info = probe("info", objects / "thumbnails" / f"{up['IMG_4000.JPG']['file_id']}.jpg")
        assert info["mean"]["top"] < 40 and info["mean"]["bottom"] > 215, info
        photo_meta = cluster.wait_result(follow_up_id(cluster, up["IMG_4000.JPG"],
                                                      "generate_thumbnail")[0])
        assert photo_meta["result"]["source"] == "image"
        assert (photo_meta["result"]["source_width"], photo_meta["result"]["source_height"]) == (
            3000, 4000)
        pdf_meta = cluster.wait_result(follow_up_id(cluster, up["report.pdf"],
                                                    "generate_thumbnail")[0])
        assert pdf_meta["result"]["source"] == "pdf"
        vid_meta = cluster.wait_result(follow_up_id(cluster, up["clip.mp4"],
                                                    "generate_thumbnail")[0])
        assert vid_meta["result"]["source"] == "video"

        # hostile inputs: clear failures, no thumbnail, not retried
        for name, words in (("bomb.png", "100000x100000"),
                            ("cut.jpg", "truncated or corrupt")):
            meta = thumbnail_meta(cluster, up[name])
            assert meta["status"] == "FAILURE", meta
            assert words in json.dumps(meta), meta
            assert d2.status(up[name]["file_id"])["thumbnail_path"] is None
        res = cluster.zmqctl("send", THUMBNAIL, "--args", json.dumps([up["diary.jpg"]["file_id"]]),
                             "-Q", "thumbnails", "--wait", "30")
        assert res.data["status"] == "FAILURE", res.data
        assert "not an image, PDF or video" in json.dumps(res.data), res.data
        # the worker survived all of it: a good thumbnail still works
        res = cluster.zmqctl("send", THUMBNAIL, "--args",
                             json.dumps([up["IMG_4000.JPG"]["file_id"]]), "-Q", "thumbnails",
                             "--wait", "30")
        assert res.data["status"] == "SUCCESS", res.data
        assert all(w.proc.alive() for w in cluster.workers)

        # notices: one Flex push per completed file, one per failed file
        completed = [n for n, s in final.items() if s["processing_status"] == "completed"]
        failed_files = [n for n, s in final.items() if s["processing_status"] == "failed"]
        assert {"IMG_4000.JPG", "report.pdf", "clip.mp4", "diary.jpg"} <= set(completed)
        pushes = line.wait_delivered(len(final), timeout=90)
        time.sleep(0.5)  # nothing more arrives
        assert len(line.delivered) == len(final), [
            d["messages"][0]["altText"] for d in line.delivered]
        assert line.errors == []
        assert all(d["to"] == ALICE_LINE for d in pushes)
        done = line.pushes("Processed:")
        assert len(done) == len(completed)
        heroes = {d["messages"][0]["contents"].get("hero", {}).get("url") for d in done}
        assert f"{HERO_BASE}/thumbnails/{up['IMG_4000.JPG']['file_id']}.jpg" in heroes
        failed = line.pushes("Processing failed")
        assert len(failed) == len(failed_files)
        bubble = json.dumps([f["messages"][0] for f in failed])
        assert "not a valid PDF" in bubble and "drive2 reprocess" in bubble
        assert up["broken.pdf"]["file_id"] in bubble


@pytest.mark.zt_timeout(120)
def test_retried_notice_keeps_its_retry_key(cluster, broker):
    """LINE down (500) for longer than one task attempt: the task retries;
    every request of every attempt carries the same X-Line-Retry-Key, and
    the notice is delivered once."""
    with LineMock() as line:
        env = media_env(line.env())
        d2 = Drive2(cluster, env)
        put_user(cluster, d2, "alice", line_id=ALICE_LINE)
        cluster.start_worker(queues=["ai_processing"], env=env)
        notes = cluster.dir / "notes.txt"
        notes.write_text("Notes about thumbnails and notices.\n")
        u = d2.upload(notes, "--user", "alice")
        assert d2.wait_final(u["file_id"])["processing_status"] == "completed"
        cluster.zmqctl("purge", "-Q", "notifications")  # we send the notice ourselves
        line.fail_next(500, 4)  # one whole task attempt (4 HTTP attempts)
        cluster.start_worker(queues=["notifications"], env=env)
        res = cluster.zmqctl("send", COMPLETE, "--args", json.dumps([u["file_id"]]), "-Q",
                             "notifications", "--max-retries", "3", "--retry-delay", "0.5",
                             "--wait", "60")
        assert res.data["status"] == "SUCCESS", res.data
        receipt = res.data["result"]["receipt"]
        reqs = [r for r in line.requests if r["path"] == "/v2/bot/message/push"]
        assert [r["status"] for r in reqs] == [500, 500, 500, 500, 200], reqs
        assert {r["retry_key"] for r in reqs} == {receipt["retry_key"]}
        assert len(line.delivered) == 1 and line.errors == []
        # the same task delivered again (a redelivery, if the broker takes the
        # id again): the same key, LINE answers 409, no second message
        res2 = cluster.zmqctl("send", COMPLETE, "--args", json.dumps([u["file_id"]]), "-Q",
                              "notifications", "--id", res.data["id"], "--wait", "30")
        if res2.rc == 0 and res2.data.get("status") == "SUCCESS":
            again = res2.data["result"]["receipt"]
            assert again["retry_key"] == receipt["retry_key"] and again["duplicate"] is True
            assert again["status"] == 409
        assert len(line.delivered) == 1 and line.errors == []


@pytest.mark.zt_timeout(150)
def test_quota_crossings_alert_once(cluster, broker):
    """Thresholds 80% and 95% of a 10 000-byte quota: 50% says nothing, 85%
    alerts for 80% once, 86% says nothing more, 96% alerts for 95%; a manual
    re-check finds nothing new; deleting files re-arms a threshold."""
    with LineMock() as line:
        env = media_env(line.env())
        d2 = Drive2(cluster, env)
        put_user(cluster, d2, "bob", quota=10000, line_id=BOB_LINE)
        cluster.start_worker(queues=QUEUES, concurrency=2, env=env)
        sizes = [5000, 3500, 100, 1000]
        expected_alerts = [[], ["80%"], ["80%"], ["80%", "95%"]]
        for i, (size, alerts) in enumerate(zip(sizes, expected_alerts)):
            f = cluster.dir / f"part{i}.txt"
            f.write_bytes((b"quota test line %d\n" % i * (size // 10 + 1))[:size])
            u = d2.upload(f, "--user", "bob")
            assert d2.wait_final(u["file_id"])["processing_status"] == "completed"
            wait_until(lambda: len(line.pushes("Processed:")) == i + 1, 30,
                       message=f"the notice of upload {i}")
            tid, meta = follow_up_id(cluster, u, "send_processing_complete")
            done = cluster.wait_result(tid, timeout=30)
            assert done["status"] == "SUCCESS", done
            quota = done["result"]["quota"]
            assert quota["percent"] == sum(sizes[: i + 1]) * 100 // 10000, quota
            if "alert_task" in quota:
                alert = cluster.wait_result(quota["alert_task"]["id"], timeout=30)
                assert alert["status"] == "SUCCESS", alert
            got = [d["messages"][0]["altText"] for d in line.pushes("Storage quota alert")]
            assert len(got) == len(alerts), got
            assert "85% used" in got[0] if got else True
            if len(got) == 2:
                assert "96% used" in got[1], got
        alerts = line.pushes("Storage quota alert")
        assert "80% of the quota" in json.dumps(alerts[0]["messages"][0])
        assert "95% of the quota" in json.dumps(alerts[1]["messages"][0])
        # a manual check: nothing new
        res = cluster.zmqctl("send", QUOTA, "--args", json.dumps(["bob"]), "-Q",
                             "notifications", "--wait", "30")
        assert res.data["status"] == "SUCCESS" and res.data["result"]["alerted"] is False
        assert res.data["result"]["crossed"] == 95
        # usage falls below 95% (a file goes), then crosses it again: one new alert
        with catalog(cluster) as db:
            db.execute("UPDATE files SET size = 0 WHERE owner = 'bob' AND size = 1000")
        res = cluster.zmqctl("send", QUOTA, "--args", json.dumps(["bob"]), "-Q",
                             "notifications", "--wait", "30")
        assert res.data["result"]["alerted"] is False and res.data["result"]["percent"] == 86
        with catalog(cluster) as db:
            db.execute("UPDATE files SET size = 1000 WHERE owner = 'bob' AND size = 0")
        res = cluster.zmqctl("send", QUOTA, "--args", json.dumps(["bob"]), "-Q",
                             "notifications", "--wait", "30")
        assert res.data["result"]["alerted"] is True and res.data["result"]["threshold"] == 95
        assert len(line.pushes("Storage quota alert")) == 3
        assert line.errors == []


@pytest.mark.zt_timeout(120)
def test_daily_summary_counts(cluster, broker):
    """Per user with uploads in the last day: files by status and bytes; a
    user without a LINE id is counted but skipped; old uploads do not count."""
    with LineMock() as line:
        env = media_env(line.env())
        d2 = Drive2(cluster, env)
        put_user(cluster, d2, "alice", line_id=ALICE_LINE)
        put_user(cluster, d2, "carol")  # no LINE id
        cluster.start_worker(queues=["ai_processing"], concurrency=2, env=env)
        uploads = []
        for user, name, data in (("alice", "a.txt", b"alpha text\n" * 10),
                                 ("alice", "b.txt", b"beta text\n" * 20),
                                 ("alice", "bad.pdf", make_pdf(["x"])[:60]),
                                 ("carol", "c.txt", b"carol text\n" * 5),
                                 ("carol", "old.txt", b"an old file\n")):
            f = cluster.dir / name
            f.write_bytes(data)
            uploads.append((user, name, len(data), d2.upload(f, "--user", user)))
        for *_, u in uploads:
            d2.wait_final(u["file_id"])
        with catalog(cluster) as db:  # one upload from last week
            db.execute("UPDATE files SET uploaded_at = '2020-01-01T00:00:00.000000Z' "
                       "WHERE id = ?", (uploads[-1][3]["file_id"],))
        cluster.start_worker(queues=["default"], env=env)
        res = cluster.zmqctl("send", DAILY, "-Q", "default", "--wait", "60")
        assert res.data["status"] == "SUCCESS", res.data
        r = res.data["result"]
        assert (r["users"], r["sent"], r["skipped"], r["failed"]) == (2, 1, 1, 0), r
        by_user = {s["user_id"]: s for s in r["summaries"]}
        a = by_user["alice"]
        assert a["files"] == 3 and a["bytes"] == sum(n for u, _, n, _ in uploads[:3])
        assert a["by_status"]["completed"]["files"] == 2
        assert a["by_status"]["failed"]["files"] == 1
        c = by_user["carol"]
        assert c["files"] == 1 and c["bytes"] == uploads[3][2]
        assert c["receipt"]["skipped"]
        pushes = line.pushes("daily summary")
        assert len(pushes) == 1 and pushes[0]["to"] == ALICE_LINE
        assert "3 files" in pushes[0]["messages"][0]["altText"]
        assert line.errors == []


@pytest.mark.zt_timeout(120)
def test_outbox_without_token(cluster, broker):
    """The embedded default: no token, notices go to DATA_DIR/outbox.jsonl
    (drive2 notifications lists them when the CLI has the command); a notice
    delivered again under the same task id is kept once."""
    env = media_env()
    d2 = Drive2(cluster, env)
    cluster.start_worker(queues=QUEUES, concurrency=2, env=env)
    notes = cluster.dir / "notes.txt"
    notes.write_text("Outbox notes.\n")
    u = d2.upload(notes)
    assert d2.wait_final(u["file_id"])["processing_status"] == "completed"
    tid, _ = follow_up_id(cluster, u, "send_processing_complete")
    meta = cluster.wait_result(tid, timeout=30)
    assert meta["status"] == "SUCCESS", meta
    assert meta["result"]["receipt"]["channel"] == "outbox"
    outbox = cluster.dir / "drive2-data" / "outbox.jsonl"
    lines = [json.loads(x) for x in outbox.read_text().splitlines()]
    assert len(lines) == 1
    e = lines[0]
    assert e["kind"] == "processing_complete" and e["file_id"] == u["file_id"]
    assert e["user_id"] == "default" and e["to"] is None
    assert e["message"]["type"] == "flex" and e["message"]["contents"]["type"] == "bubble"
    # the same task again (a redelivery after its result was written): one entry
    res = cluster.zmqctl("send", COMPLETE, "--args", json.dumps([u["file_id"]]), "-Q",
                         "notifications", "--id", tid, "--wait", "30")
    if res.rc == 0 and res.data.get("status") == "SUCCESS":
        assert res.data["result"]["receipt"]["duplicate"] is True, res.data
    assert len(outbox.read_text().splitlines()) == 1
    rc, data, p = d2.run("notifications")
    if rc == 2 and "unknown command" in p.stderr:
        pytest.skip("drive2 notifications is not in this build's CLI yet")
    assert rc == 0, p.stderr
    assert [n["file_id"] for n in data["notifications"]] == [u["file_id"]]
