#!/usr/bin/python3
"""drive2_bench: files processed per second by the Drive2 pipeline, and the
cost of each of its steps (issue 6; figures in docs/BENCHMARKS.md).

Starts its own redis-server, zmqbroker and --workers zmqworkers (-c
--concurrency, serving ai_processing, thumbnails, notifications and default)
on free loopback ports, all on the embedded defaults (local storage, SQLite
catalog, local analyzer, outbox) in a temporary folder. Uploads --files small
text files with `drive2 upload` while no worker runs, then starts the workers
and times the drain on the broker's events stream: from the first
process_uploaded_file task-started to the last task-succeeded. The per-step
costs are the mean of the `steps_ms` each task's result carries (read from
Redis). Everything started is stopped on every way out; every wait is bounded.

    /usr/bin/python3 tools/drive2_bench.py [--files 100] [--workers 2]
        [--concurrency 1] [--build build] [--json]

Run it on a quiet machine: other load skews every figure.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import msgpack
import redis
import zmq

PROCESS_TASK = "app.workers.tasks.file_processing.process_uploaded_file"
STEPS = ("download", "extract", "analyze", "update_database", "store_embedding")
WORDS = ("storage invoice quarterly review photo upload archive summary thumbnail "
         "budget contract meeting travel receipt report project customer schedule "
         "backup network printer license renewal payment account budget office").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise SystemExit(f"drive2_bench: timed out after {timeout}s waiting for {what}")


def sample_text(rng, index):
    title = " ".join(rng.choice(WORDS).capitalize() for _ in range(3))
    body = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))) + "."
            for _ in range(rng.randint(10, 20))]
    return f"{title} {index}\n\n" + "\n".join(body) + "\n"


class Cluster:
    def __init__(self, bin_dir, tmp, workers, concurrency):
        self.bin = bin_dir
        self.tmp = tmp
        self.workers = workers
        self.concurrency = concurrency
        self.procs = []
        self.redis_port = free_port()
        self.broker_url = f"tcp://127.0.0.1:{free_port()}"
        self.events_url = f"tcp://127.0.0.1:{free_port()}"
        self.backend = f"redis://127.0.0.1:{self.redis_port}/1"
        self.env = dict(os.environ, ZMQ_BROKER_URL=self.broker_url,
                        ZMQ_EVENTS_URL=self.events_url, RESULT_BACKEND=self.backend,
                        DRIVE2_DATA_DIR=os.path.join(tmp, "drive2-data"))
        for key in ("GEMINI_API_KEY", "LINE_CHANNEL_ACCESS_TOKEN", "QDRANT_URL", "STORAGE_URL",
                    "CATALOG_URL"):
            self.env.pop(key, None)  # the embedded defaults, whatever this shell has

    def start(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                             start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def start_core(self):
        self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no"])
        r = redis.Redis(port=self.redis_port, db=1)

        def redis_up():
            try:
                return r.ping()
            except redis.exceptions.ConnectionError:
                return False
        wait_until("redis-server", redis_up, 10)
        self.start("broker", [f"{self.bin}/zmqbroker", "--bind", self.broker_url,
                              "--events-bind", self.events_url, "--data-dir",
                              os.path.join(self.tmp, "broker")])
        wait_until("zmqbroker", lambda: subprocess.run(
            [f"{self.bin}/zmqctl", "--timeout", "0.5", "ping"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0, 15)
        return r

    def start_workers(self):
        for i in range(self.workers):
            self.start(f"worker-{i}", [f"{self.bin}/zmqworker", "-Q",
                                       "ai_processing,thumbnails,notifications,default",
                                       "-c", str(self.concurrency), "-n", f"bench{i}@%h"])

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for the whole drain")
    args = ap.parse_args()
    bin_dir = os.path.abspath(os.path.join(args.build, "bin"))
    for prog in ("zmqbroker", "zmqworker", "zmqctl", "drive2"):
        if not os.access(os.path.join(bin_dir, prog), os.X_OK):
            raise SystemExit(f"drive2_bench: {bin_dir}/{prog} is missing (build first)")

    tmp = tempfile.mkdtemp(prefix="drive2-bench-")
    cluster = Cluster(bin_dir, tmp, args.workers, args.concurrency)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        r = cluster.start_core()
        sub.connect(cluster.events_url)
        sub.setsockopt(zmq.SUBSCRIBE, b"task-")
        rng = random.Random(6)
        files = []
        for i in range(args.files):
            path = os.path.join(tmp, f"note-{i:04d}.txt")
            with open(path, "w") as f:
                f.write(sample_text(rng, i))
            files.append(path)
        sizes = [os.path.getsize(p) for p in files]

        t_upload = time.monotonic()
        ids = []
        for path in files:
            out = subprocess.run([f"{bin_dir}/drive2", "upload", path, "--user", "bench"],
                                 env=cluster.env, capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                raise SystemExit(f"drive2_bench: drive2 upload failed: {out.stderr.strip()}")
            ids.append(out.stdout.strip())
        upload_s = time.monotonic() - t_upload

        time.sleep(0.3)  # the SUB connection is up long before this; drop upload events
        while sub.poll(0):
            sub.recv_multipart()
        cluster.start_workers()
        first_start = last_done = None
        done = failed = 0
        deadline = time.monotonic() + args.timeout
        while done + failed < len(ids):
            if time.monotonic() > deadline:
                raise SystemExit(f"drive2_bench: {done + failed} of {len(ids)} files finished "
                                 f"in {args.timeout}s (logs: {tmp})")
            if not sub.poll(1000):
                continue
            kind, body = sub.recv_multipart()[:2]
            ev = msgpack.unpackb(body, raw=False)
            if ev.get("name") != PROCESS_TASK:
                continue
            if kind == b"task-started" and first_start is None:
                first_start = ev["timestamp"]
            elif kind == b"task-succeeded":
                done += 1
                last_done = ev["timestamp"]
            elif kind == b"task-failed":
                failed += 1
        drain_s = last_done - first_start

        db = sqlite3.connect(os.path.join(cluster.env["DRIVE2_DATA_DIR"], "catalog.db"))
        rows = db.execute("SELECT task_id, processing_status FROM files").fetchall()
        completed = sum(1 for _, status in rows if status == "completed")
        steps = {s: [] for s in STEPS}
        for task_id, _ in rows:
            meta = r.get(f"celery-task-meta-{task_id}")
            result = json.loads(meta)["result"] if meta else None
            if isinstance(result, dict) and isinstance(result.get("steps_ms"), dict):
                for s in STEPS:
                    steps[s].append(float(result["steps_ms"][s]))
        figures = {
            "files": len(ids), "workers": args.workers, "concurrency": args.concurrency,
            "mean_file_bytes": round(statistics.mean(sizes)),
            "completed": completed, "failed": failed,
            "uploads_per_s": round(len(ids) / upload_s, 1),
            "drain_s": round(drain_s, 3),
            "files_per_s": round(done / drain_s, 1) if drain_s > 0 else None,
            "steps_ms_mean": {s: round(statistics.mean(v), 3) if v else None
                              for s, v in steps.items()},
            "steps_ms_p99": {s: round(sorted(v)[max(0, int(len(v) * 0.99) - 1)], 3) if v else None
                             for s, v in steps.items()},
        }
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            print(f"{figures['files']} text files (mean {figures['mean_file_bytes']} bytes), "
                  f"{args.workers} workers x -c {args.concurrency}, embedded defaults")
            print(f"  uploads (drive2 upload, one process each): {figures['uploads_per_s']} /s")
            print(f"  processed: {completed} completed, {failed} failed, drain "
                  f"{figures['drain_s']} s -> {figures['files_per_s']} files/s")
            print("  per step, mean / p99 ms (from each result's steps_ms):")
            for s in STEPS:
                print(f"    {s:16} {figures['steps_ms_mean'][s]:>8} / {figures['steps_ms_p99'][s]}")
        return 0 if completed == len(ids) else 1
    finally:
        sub.close()
        ctx.term()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
