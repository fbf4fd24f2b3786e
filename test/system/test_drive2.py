"""Drive2 end to end: the drive2 CLI and zmqworker's Drive2 tasks over a real
broker and Redis, with the embedded defaults (./drive2-data: local objects,
SQLite catalog, local analyzer, vectors in the catalog) and with production
services (a real PostgreSQL server, the SigV4-checking S3 server, the Gemini
and Qdrant request-checking mocks). Files: a markdown text, a PDF and a
photo with EXIF made here, and a corrupt (truncated) PDF; then reprocess,
cleanup of stuck rows and repeated runs of one file."""
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from drive2_mocks import GeminiMock, QdrantMock, S3Server
from drive2util import (Drive2, drive2_env, free_port, make_jpeg_with_exif, make_pdf,
                        postgres_or_skip)

PROCESS = "app.workers.tasks.file_processing.process_uploaded_file"
REPROCESS = "app.workers.tasks.file_processing.reprocess_file"
CLEANUP = "app.workers.tasks.file_processing.cleanup_old_tasks"
REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "worker" / "drive2" / "migrations"

NOTES = """# Solar Panels for Small Homes

Solar panels turn sunlight into electricity for the home. A small roof can hold
enough solar panels to cover most of the electricity a family uses in summer.

The price of solar panels fell sharply over the last decade, and batteries now
store the electricity for the evening.
"""

PDF_LINES = ["Quarterly Sales Report", "Revenue grew in the third quarter of the year.",
             "Widgets sold well in Europe and in Asia."]


def write_samples(folder):
    folder.mkdir(parents=True, exist_ok=True)
    notes = folder / "notes.md"
    notes.write_text(NOTES)
    pdf = folder / "report.pdf"
    pdf.write_bytes(make_pdf(PDF_LINES))
    photo = folder / "IMG_0001.JPG"
    photo.write_bytes(make_jpeg_with_exif("Canon", "Canon EOS 80D", "2024:05:01 10:30:00"))
    broken = folder / "broken.pdf"
    broken.write_bytes(make_pdf(PDF_LINES)[:60])  # the header survives, the document does not
    return notes, pdf, photo, broken


def queue_counts(cluster):
    return {q["name"]: q["ready"] for q in cluster.client().control("queues")}


def catalog_db(cluster):
    return sqlite3.connect(str(cluster.dir / "drive2-data" / "catalog.db"), timeout=10)


@pytest.mark.zt_timeout(150)
def test_embedded_defaults_text_pdf_photo_and_corrupt_file(cluster, broker):
    """The quick start: nothing configured, workers and drive2 agree on
    ./drive2-data; each file ends with the right fields."""
    events = cluster.events()
    events.sync(cluster.client())
    cluster.start_worker(queues=["ai_processing"], concurrency=2, env=drive2_env())
    d2 = Drive2(cluster)
    notes, pdf, photo, broken = write_samples(cluster.dir / "in")

    up = {p.name: d2.upload(p) for p in (notes, pdf, photo, broken)}
    for name, u in up.items():
        assert u["processing_status"] == "pending" and u["file_id"] and u["task_id"], u
        assert u["owner"] == "default" and len(u["checksum"]) == 64
    assert up["report.pdf"]["mime_type"] == "application/pdf"
    assert up["IMG_0001.JPG"]["mime_type"] == "image/jpeg"
    assert up["notes.md"]["mime_type"] == "text/markdown"
    final = {name: d2.wait_final(u["file_id"]) for name, u in up.items()}

    text = final["notes.md"]
    assert text["processing_status"] == "completed", text
    assert text["ai_filename"] == "solar-panels-for-small-homes.md"
    assert "Solar panels turn sunlight into electricity" in text["ai_summary"]
    assert {"solar", "panels", "electricity", "markdown"} <= set(text["ai_tags"])
    assert text["error"] is None and text["processed_at"] and text["attempts"] == 1
    assert "progress" not in text

    doc = final["report.pdf"]
    assert doc["processing_status"] == "completed", doc
    assert doc["ai_filename"] == "quarterly-sales-report.pdf"
    assert "Revenue grew in the third quarter" in doc["ai_summary"]
    assert {"pdf", "quarterly", "revenue"} <= set(doc["ai_tags"]), doc

    img = final["IMG_0001.JPG"]
    assert img["processing_status"] == "completed", img
    assert img["ai_summary"] == ("A landscape JPEG image of 96x64 pixels, taken 2024-05-01 "
                                 "10:30:00 with a Canon EOS 80D.")
    assert img["ai_filename"] == "photo-2024-05-01-canon-eos-80d.jpg"
    assert {"image", "landscape", "canon", "canon eos 80d", "2024"} <= set(img["ai_tags"])

    bad = final["broken.pdf"]
    assert bad["processing_status"] == "failed", bad
    assert bad["error"].startswith("extract: not a valid PDF"), bad
    assert bad["ai_filename"] is None and bad["attempts"] == 1  # not retried: it cannot help

    # the task results in Redis: five progress steps, follow-ups sent
    tid = up["notes.md"]["task_id"]
    meta = cluster.wait_result(tid)
    assert meta["status"] == "SUCCESS" and meta["result"]["ai_filename"] == text["ai_filename"]
    assert meta["result"]["analyzer"] == "local" and meta["result"]["vectors"] == "catalog"
    assert set(meta["result"]["steps_ms"]) == {"download", "extract", "analyze",
                                               "update_database", "store_embedding"}
    # the worker coalesces progress to ~10 reports/s (always keeping the
    # last), so a run of a few ms shows its first and last steps at least
    events.wait_for(lambda e: e.get("type") == "task-progress" and e.get("id") == tid
                    and int(e["current"]) == 5, timeout=10, what="step 5 of 5")
    steps = events.snapshot("task-progress", tid)
    currents = [int(e["current"]) for e in steps]
    assert currents == sorted(set(currents)) and currents[-1] == 5, currents
    assert all(int(e["total"]) == 5 for e in steps)
    assert steps[-1]["message"] == "store embedding (step 5 of 5)", steps
    bad_meta = cluster.wait_result(up["broken.pdf"]["task_id"])
    assert bad_meta["status"] == "FAILURE" and "not a valid PDF" in json.dumps(bad_meta)
    # thumbnails for the PDF and the photo, a notice per file (nobody serves
    # those queues yet: the tasks wait there for the next issue's workers)
    counts = queue_counts(cluster)
    assert counts.get("thumbnails") == 2, counts
    assert counts.get("notifications") == 4, counts
    assert meta["result"]["follow_ups"]["send_processing_complete"]["sent"] is True
    assert "generate_thumbnail" not in meta["result"]["follow_ups"]  # text: no thumbnail

    # everything lives in ./drive2-data of the shared working folder
    data = cluster.dir / "drive2-data"
    assert (data / "catalog.db").exists()
    assert (data / "objects" / up["report.pdf"]["storage_key"]).read_bytes() == pdf.read_bytes()
    with catalog_db(cluster) as db:
        n = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        assert n == 3  # one vector per completed file
        migrations = sorted(REPO_MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
        assert db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == int(
            migrations[-1].name[:4])

    # search: the nearest file first
    rc, res, p = d2.run("search", "solar panels on the roof", "-k", "2")
    assert rc == 0, p.stderr
    assert res["results"][0]["file_id"] == up["notes.md"]["file_id"], res
    assert len(res["results"]) == 2 and res["results"][0]["score"] > res["results"][1]["score"]
    rc, res, p = d2.run("search", "quarterly revenue widgets", "-k", "1")
    assert res["results"][0]["file_id"] == up["report.pdf"]["file_id"], res

    # the human-readable status
    rc, _, p = d2.run("status", up["notes.md"]["file_id"], json_out=False)
    assert rc == 0 and "solar-panels-for-small-homes.md" in p.stdout and "completed" in p.stdout


@pytest.mark.zt_timeout(90)
def test_status_shows_progress_while_processing(cluster, broker):
    """While a file is pending or processing, status reads the task's
    PROGRESS state from the result backend."""
    d2 = Drive2(cluster)
    notes, *_ = write_samples(cluster.dir / "in")
    u = d2.upload(notes)  # no worker yet: it stays pending
    cluster.redis.set(f"celery-task-meta-{u['task_id']}", json.dumps({
        "status": "PROGRESS", "result": {"current": 2, "total": 5,
                                         "message": "extract (step 2 of 5)"},
        "traceback": None, "children": [], "date_done": None, "task_id": u["task_id"]}))
    s = d2.status(u["file_id"])
    assert s["processing_status"] == "pending"
    assert s["progress"] == {"state": "PROGRESS", "current": 2, "total": 5,
                             "step": "extract (step 2 of 5)", "percent": 40}, s
    rc, _, p = d2.run("status", u["file_id"], "--wait", "0.3")
    assert rc == 3  # --wait timed out: still pending
    # a worker finishes it; the progress is gone from the answer
    cluster.start_worker(queues=["ai_processing"], env=drive2_env())
    s = d2.wait_final(u["file_id"])
    assert s["processing_status"] == "completed" and "progress" not in s
    # a file id that does not exist
    rc, err, p = d2.run("status", "no-such-file")
    assert rc == 1 and "no file no-such-file" in err["error"], err


@pytest.mark.zt_timeout(120)
def test_reprocess_failed_file_and_force(cluster, broker):
    cluster.start_worker(queues=["ai_processing"], concurrency=2, env=drive2_env())
    d2 = Drive2(cluster)
    _, _, _, broken = write_samples(cluster.dir / "in")
    u = d2.upload(broken)
    s = d2.wait_final(u["file_id"])
    assert s["processing_status"] == "failed", s

    # a failed file needs no --force (still broken: it fails again)
    rc, r0, p = d2.run("reprocess", u["file_id"])
    assert rc == 0, p.stderr
    s = d2.wait_final(u["file_id"])
    assert s["processing_status"] == "failed" and s["task_id"] == r0["task_id"]

    # the user fixes the object (here: the stored bytes), then reprocesses
    obj = cluster.dir / "drive2-data" / "objects" / u["storage_key"]
    obj.write_bytes(make_pdf(PDF_LINES))
    rc, r, p = d2.run("reprocess", u["file_id"])
    assert rc == 0 and r["processing_status"] == "pending", (p.stdout, p.stderr)
    s = d2.wait_final(u["file_id"])
    assert s["processing_status"] == "completed" and s["error"] is None, s
    assert s["ai_filename"] == "quarterly-sales-report.pdf" and s["attempts"] == 1
    assert s["task_id"] == r["task_id"]

    rc, err, p = d2.run("reprocess", u["file_id"])
    assert rc == 1 and "completed" in err["error"] and "--force" in err["error"], err
    rc, r2, p = d2.run("reprocess", u["file_id"], "--force")
    assert rc == 0 and r2["force"] is True
    s2 = d2.wait_final(u["file_id"])
    assert s2["processing_status"] == "completed" and s2["task_id"] == r2["task_id"]
    assert s2["processed_at"] > s["processed_at"]
    with catalog_db(cluster) as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings WHERE file_id = ?",
                          (u["file_id"],)).fetchone()[0] == 1

    # the reprocess_file task itself (what an API would send)
    u2 = d2.upload(broken)
    assert d2.wait_final(u2["file_id"])["processing_status"] == "failed"
    res = cluster.zmqctl("send", REPROCESS, "--args", json.dumps([u2["file_id"]]), "-Q",
                         "ai_processing", "--wait", "20")
    assert res.rc == 0 and res.data["status"] == "SUCCESS", res
    run_id = res.data["result"]["task_id"]
    s = d2.wait_final(u2["file_id"])
    assert s["task_id"] == run_id and s["processing_status"] == "failed"
    # a completed file without force is refused, and not retried
    res = cluster.zmqctl("send", REPROCESS, "--args", json.dumps([u["file_id"]]), "-Q",
                         "ai_processing", "--wait", "20")
    assert res.rc == 1 and res.data["status"] == "FAILURE", res
    assert "completed" in json.dumps(res.data)


@pytest.mark.zt_timeout(90)
def test_cleanup_old_tasks_fails_stuck_rows(cluster, broker):
    d2 = Drive2(cluster)
    notes, pdf, *_ = write_samples(cluster.dir / "in")
    old = d2.upload(notes)  # no ai_processing worker: both stay pending
    fresh = d2.upload(pdf)
    with catalog_db(cluster) as db:
        db.execute("UPDATE files SET processing_status = 'processing', "
                   "processing_started_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?",
                   (old["file_id"],))
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        db.execute("UPDATE files SET processing_status = 'processing', "
                   "processing_started_at = ? WHERE id = ?", (now, fresh["file_id"]))
    cluster.start_worker(queues=["default"], env=drive2_env())
    res = cluster.zmqctl("send", CLEANUP, "-Q", "default", "--wait", "20")
    assert res.rc == 0 and res.data["status"] == "SUCCESS", res
    assert res.data["result"]["failed"] == 1 and res.data["result"]["older_than"] == 3600
    assert res.data["result"]["file_ids"] == [old["file_id"]]
    s = d2.status(old["file_id"])
    assert s["processing_status"] == "failed" and "cleanup_old_tasks" in s["error"], s
    assert d2.status(fresh["file_id"])["processing_status"] == "processing"
    # a shorter threshold (seconds, as its argument) takes the fresh one too
    res = cluster.zmqctl("send", CLEANUP, "--args", "[0]", "-Q", "default", "--wait", "20")
    assert res.data["result"]["file_ids"] == [fresh["file_id"]], res
    # nothing left: an empty run
    res = cluster.zmqctl("send", CLEANUP, "-Q", "default", "--wait", "20")
    assert res.data["result"] == {"failed": 0, "file_ids": [], "older_than": 3600}, res


@pytest.mark.zt_timeout(90)
def test_repeated_runs_of_one_file_leave_one_state(cluster, broker):
    """A redelivery, or the same file sent again while it runs: one row
    state, one vector, one set of results."""
    d2 = Drive2(cluster)
    notes, *_ = write_samples(cluster.dir / "in")
    u = d2.upload(notes)  # queued, no worker yet
    ids = [u["task_id"]]
    for _ in range(2):
        res = cluster.zmqctl("send", PROCESS, "--args", json.dumps([u["file_id"]]), "-Q",
                             "ai_processing")
        assert res.rc == 0, res
        ids.append(res.data["id"])
    cluster.start_worker(queues=["ai_processing"], concurrency=2, env=drive2_env())
    metas = cluster.wait_results(ids, timeout=30)
    assert all(m["status"] == "SUCCESS" for m in metas.values()), metas
    results = [m["result"] for m in metas.values()]
    assert {r["status"] for r in results} == {"completed"}, results
    assert {r["ai_filename"] for r in results} == {"solar-panels-for-small-homes.md"}
    assert {tuple(r["ai_tags"]) for r in results} == {tuple(results[0]["ai_tags"])}
    s = d2.status(u["file_id"])
    assert s["processing_status"] == "completed" and s["ai_tags"] == results[0]["ai_tags"]
    with catalog_db(cluster) as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 1
    # once completed, another run only answers with the stored results
    res = cluster.zmqctl("send", PROCESS, "--args", json.dumps([u["file_id"]]), "-Q",
                         "ai_processing", "--wait", "20")
    assert res.data["result"]["already_completed"] is True, res
    assert d2.status(u["file_id"])["processed_at"] == s["processed_at"]
    # every copy sent the completing run's follow-up ids: one notice queued
    assert queue_counts(cluster).get("notifications") == 1
    # a file the catalog does not know fails at once, without retries
    res = cluster.zmqctl("send", PROCESS, "--args", '["no-such-file"]', "-Q", "ai_processing",
                         "--wait", "20")
    assert res.rc == 1 and "FileNotFoundError" in json.dumps(res.data), res


@pytest.mark.zt_timeout(120)
def test_transient_failure_is_retried_then_fails_the_file(cluster, broker):
    """A step that fails for a reason another attempt may fix (object
    storage unreachable) notes the error and retries; on the last attempt
    the file becomes failed and send_processing_failed is sent."""
    d2 = Drive2(cluster)
    notes, *_ = write_samples(cluster.dir / "in")
    u = d2.upload(notes)  # stored locally; no worker yet
    cluster.zmqctl("purge", "-Q", "ai_processing")
    # the worker's storage is an S3 endpoint nobody listens on
    dead = {"STORAGE_URL": "s3://drive2", "S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "secret-not-shown"}
    cluster.start_worker(queues=["ai_processing"], env=drive2_env(dead))
    res = cluster.zmqctl("send", PROCESS, "--args", json.dumps([u["file_id"]]), "-Q",
                         "ai_processing", "--max-retries", "1", "--retry-delay", "0.2")
    assert res.rc == 0, res
    tid = res.data["id"]
    meta = cluster.wait_result(tid, timeout=60)
    assert meta["status"] == "FAILURE" and "ConnectionError" in json.dumps(meta), meta
    s = d2.status(u["file_id"])
    assert s["processing_status"] == "failed" and s["error"].startswith("download: "), s
    assert s["attempts"] == 2 and s["task_id"] == tid, s
    assert "secret-not-shown" not in json.dumps(s) + json.dumps(meta)
    assert queue_counts(cluster).get("notifications") == 1


@pytest.mark.zt_timeout(60)
def test_upload_odd_names_and_users(cluster, broker):
    """File names are bytes: a Latin-1 name is stored as UTF-8 (U+FFFD for
    the bad byte); object keys come from the user and the file id, never
    from the name; a user id that could leave uploads/ is refused."""
    d2 = Drive2(cluster)
    folder = cluster.dir / "in"
    folder.mkdir()
    latin = folder / os.fsdecode(b"caf\xe9 menu.TXT")
    latin.write_text("Coffee and cake.\n")
    u = d2.upload(latin)
    assert u["original_name"] == "caf\ufffd menu.TXT", u
    assert u["storage_key"] == f"uploads/default/{u['file_id']}.txt", u
    assert d2.status(u["file_id"])["original_name"] == "caf\ufffd menu.TXT"

    u2 = d2.upload(latin, "--name", "../../etc/passwd")
    assert u2["original_name"] == "../../etc/passwd"
    assert u2["storage_key"] == f"uploads/default/{u2['file_id']}", u2
    objects = cluster.dir / "drive2-data" / "objects"
    assert (objects / u2["storage_key"]).read_text() == "Coffee and cake.\n"

    for user in ("..", "a/b", "", "x" * 65):
        rc, err, p = d2.run("upload", latin, "--user", user)
        assert rc == 1 and "user id" in err["error"], (user, p.stdout, p.stderr)
    rc, err, p = d2.run("upload", folder / os.fsdecode(b"missing-\xff.txt"))
    assert rc == 1 and "missing-\ufffd.txt" in err["error"], (p.stdout, p.stderr)
    with catalog_db(cluster) as db:
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 2


@pytest.mark.zt_timeout(180)
def test_production_services_postgres_s3_gemini_qdrant(cluster, broker, tmp_path):
    """The same pipeline pointed at real services by configuration: objects
    in S3 (SigV4 checked), the catalog in PostgreSQL, analysis by Gemini
    (answering 429 twice first), vectors in Qdrant, and a worker on the
    thumbnails queue too."""
    pg = postgres_or_skip()
    key = "sk-gemini-e2e-0123456789"
    with pg, S3Server(tmp_path / "s3", bucket="drive2", lifetime=170) as s3, \
            GeminiMock(key, lifetime=170) as gemini, QdrantMock(lifetime=170) as qdrant:
        env = dict(s3.env())
        env.update({"DATABASE_URL": pg.url(), "GEMINI_API_KEY": key,
                    "GEMINI_BASE_URL": gemini.url, "QDRANT_URL": qdrant.url,
                    "DRIVE2_DATA_DIR": str(tmp_path / "unused-data")})
        gemini.fail_429 = 2
        cluster.start_worker(queues=["ai_processing"], concurrency=2, env=drive2_env(env))
        cluster.start_worker(queues=["thumbnails"], concurrency=1, env=drive2_env(env))
        d2 = Drive2(cluster, env)
        notes, pdf, photo, broken = write_samples(tmp_path / "in")
        up = {p.name: d2.upload(p) for p in (notes, photo, broken)}
        final = {n: d2.wait_final(u["file_id"], timeout=90) for n, u in up.items()}

        for name in ("notes.md", "IMG_0001.JPG"):
            f = final[name]
            assert f["processing_status"] == "completed", f
            assert f["ai_filename"] == "quarterly-report.txt"  # the mock's answer
            assert f["ai_summary"] == "A quarterly report on sales."
            assert [t.lower() for t in f["ai_tags"]] == ["finance", "report", "q3"]
        assert final["broken.pdf"]["processing_status"] == "failed"
        assert "not a valid PDF" in final["broken.pdf"]["error"]
        assert gemini.fail_429 == 0 and not gemini.errors and not qdrant.errors
        assert any("inlineData" in json.dumps(r["json"]) for r in gemini.requests)
        assert key not in json.dumps(final)

        # each service really holds the data
        assert pg.psql("SELECT COUNT(*) FROM files") == "3"
        assert pg.psql("SELECT processing_status FROM files WHERE id = '%s'"
                       % up["notes.md"]["file_id"]) == "completed"
        assert pg.psql("SELECT COUNT(*) FROM embeddings") == "0"  # vectors are in Qdrant
        points = qdrant.collections["drive2_files"]["points"]
        assert sorted(p[1]["file_id"] for p in points.values()) == sorted(
            up[n]["file_id"] for n in ("notes.md", "IMG_0001.JPG"))
        stored = list((tmp_path / "s3").rglob("*"))
        assert any(up["notes.md"]["file_id"] in str(p) for p in stored), stored
        assert not (tmp_path / "unused-data" / "objects").exists()

        # a worker serves thumbnails: generate_thumbnail is sent to it, or (a
        # worker without that task, before issue 7) refused, noted, harmless
        meta = cluster.wait_result(up["IMG_0001.JPG"]["task_id"])
        thumb = meta["result"]["follow_ups"]["generate_thumbnail"]
        assert thumb["queue"] == "thumbnails" and thumb["id"].endswith(":thumbnail"), thumb
        assert thumb["sent"] is True or "unknown-task" in thumb["error"], thumb
        assert meta["result"]["analyzer"] == "gemini" and meta["result"]["vectors"] == "qdrant"

        rc, res, p = d2.run("search", "quarterly report", "-k", "5")
        assert rc == 0 and res["vectors"] == "qdrant" and res["analyzer"] == "gemini", p.stderr
        assert {r["file_id"] for r in res["results"]} == {
            up[n]["file_id"] for n in ("notes.md", "IMG_0001.JPG")}

        # reprocess a failed file against PostgreSQL, after fixing its object
        s3_obj = d2.run("status", up["broken.pdf"]["file_id"])[1]["storage_key"]
        assert s3_obj.startswith("uploads/default/")
        rc, r, p = d2.run("reprocess", up["broken.pdf"]["file_id"])
        assert rc == 0, p.stderr
        again = d2.wait_final(up["broken.pdf"]["file_id"], timeout=60)
        assert again["processing_status"] == "failed" and again["task_id"] == r["task_id"]
