#!/usr/bin/python3
"""celery_bench: the Celery side of the benchmark, in zmqbench's shape.

Runs Celery 5 (Debian's python3-celery) with a Redis broker and a Redis result
backend (separate db numbers on one Redis), starts its own worker (prefork,
concurrency 2) as a subprocess serving the noop task defined in this module,
sends N noop tasks with at most --window unfinished, and times each from
apply_async() to the arrival of its SUCCESS. Arrival is observed exactly as
zmqbench observes ours: a PSUBSCRIBE on celery-task-meta-* made before the
first task is sent (Celery's Redis backend PUBLISHes every state it stores).
Prints the same fields as `zmqbench --json`. Every wait is bounded; the worker
is stopped (its whole process group) on every way out.

Run it with /usr/bin/python3: Debian's celery and redis import only there.

    /usr/bin/python3 tools/celery_bench.py --redis-url redis://127.0.0.1:6379 \\
        --tasks 5000 --json
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TASK_NAME = "celery_bench.noop"


def make_app(broker_url, backend_url):
    """The Celery app both the sender and the worker use."""
    from celery import Celery

    app = Celery("celery_bench", broker=broker_url, backend=backend_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME)
    def noop():
        return None

    return app, noop


# The worker imports this module (celery -A celery_bench): it finds its app here,
# configured through the environment by the sender below.
if __name__ != "__main__":
    app, noop = make_app(
        os.environ.get("CELERY_BENCH_BROKER", "redis://127.0.0.1:6379/2"),
        os.environ.get("CELERY_BENCH_BACKEND", "redis://127.0.0.1:6379/3"),
    )


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def percentile_ms(sorted_s, p):
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_s)))
    return sorted_s[rank - 1] * 1000.0


class Listener(threading.Thread):
    """Reads the PSUBSCRIBE stream and records when each of our tasks finished."""

    def __init__(self, redis_url, prefix):
        super().__init__(daemon=True)
        import redis

        self.prefix = "celery-task-meta-" + prefix
        self.pubsub = redis.Redis.from_url(redis_url).pubsub()
        self.pubsub.psubscribe("celery-task-meta-*")
        deadline = time.monotonic() + 5
        while True:  # wait for Redis to confirm, so nothing published later is missed
            msg = self.pubsub.get_message(timeout=0.5)
            if msg and msg["type"] == "psubscribe":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("Redis did not confirm PSUBSCRIBE within 5 s")
        self.cond = threading.Condition()
        self.sent = {}  # task index -> monotonic send time
        self.latencies = []
        self.failed = 0
        self.done = set()
        self.stop = False
        self.error = None

    def run(self):
        try:
            while not self.stop:
                msg = self.pubsub.get_message(timeout=0.1)
                if not msg or msg["type"] != "pmessage":
                    continue
                channel = msg["channel"].decode()
                if not channel.startswith(self.prefix):
                    continue
                status = json.loads(msg["data"]).get("status")
                if status not in ("SUCCESS", "FAILURE", "REVOKED"):
                    continue
                now = time.monotonic()
                index = int(channel[len(self.prefix):])
                with self.cond:
                    if index in self.done or index not in self.sent:
                        continue
                    self.done.add(index)
                    self.latencies.append(now - self.sent[index])
                    if status != "SUCCESS":
                        self.failed += 1
                    self.cond.notify_all()
        except Exception as exc:  # reported by the main thread
            self.error = exc
            with self.cond:
                self.cond.notify_all()

    def close(self):
        self.stop = True
        self.join(timeout=2)
        self.pubsub.close()


def wait_progress(listener, done_pred, stall_s):
    """Waits (holding listener.cond) until done_pred() is true, failing when no
    task finishes for stall_s seconds."""
    last = len(listener.done)
    since = time.monotonic()
    while not done_pred():
        if listener.error:
            raise RuntimeError(f"result subscription failed: {listener.error}")
        listener.cond.wait(timeout=0.2)
        if len(listener.done) != last:
            last, since = len(listener.done), time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise TimeoutError(
                f"no task finished for {stall_s:g} s "
                f"({len(listener.done)} finished, {len(listener.sent)} sent)")


def start_worker(args, broker_url, backend_url, logfile):
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    env["CELERY_BENCH_BROKER"] = broker_url
    env["CELERY_BENCH_BACKEND"] = backend_url
    cmd = [
        sys.executable, "-m", "celery", "-A", "celery_bench", "worker",
        "--pool", "prefork", "--concurrency", str(args.concurrency),
        "--loglevel", "WARNING", "--hostname", f"celery-bench-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle",
    ]
    # Its own process group, so stopping it also stops its pool children.
    return subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir(), stdout=logfile,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def wait_worker_ready(noop, proc, timeout_s):
    """Sends noop tasks until one comes back: the worker is up and consuming."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with status {proc.returncode}")
        try:
            noop.apply_async().get(timeout=1)
            return
        except Exception:  # celery's TimeoutError: not consuming yet
            continue
    raise TimeoutError(f"celery worker not ready within {timeout_s:g} s")


def run(args):
    base = args.redis_url.rstrip("/")
    if base.count("/") > 2:  # drop a /db suffix: we choose the dbs
        base = base.rsplit("/", 1)[0]
    broker_url = f"{base}/{args.broker_db}"
    backend_url = f"{base}/{args.backend_db}"
    import celery
    import celery.exceptions

    app, noop = make_app(broker_url, backend_url)
    app.control.purge()  # tasks left over by an aborted earlier run

    logfile = tempfile.NamedTemporaryFile(prefix="celery-bench-worker-", suffix=".log",
                                          delete=False)
    proc = None
    listener = None
    try:
        proc = start_worker(args, broker_url, backend_url, logfile)
        wait_worker_ready(noop, proc, args.start_timeout)
        for _ in range(args.warmup):
            try:
                noop.apply_async().get(timeout=args.stall)
            except celery.exceptions.TimeoutError:
                raise TimeoutError(f"warm-up task not done within {args.stall:g} s")

        prefix = f"cb-{uuid.uuid4().hex[:8]}-"
        listener = Listener(backend_url, prefix)
        listener.start()
        start = time.monotonic()
        for i in range(args.tasks):
            with listener.cond:
                wait_progress(listener, lambda: len(listener.sent) - len(listener.done)
                              < args.window, args.stall)
                listener.sent[i] = time.monotonic()
            noop.apply_async(task_id=f"{prefix}{i}")
        with listener.cond:
            wait_progress(listener, lambda: len(listener.done) >= args.tasks, args.stall)
        seconds = time.monotonic() - start
        lat = sorted(listener.latencies)
        failed = listener.failed
    except (TimeoutError, RuntimeError) as exc:
        print(f"celery_bench: {exc}; worker log: {logfile.name}", file=sys.stderr)
        return 1
    except Interrupted:
        raise
    except Exception as exc:  # Redis down, kombu errors, ...: one line, not a traceback
        print(f"celery_bench: {type(exc).__name__}: {exc}; worker log: {logfile.name}",
              file=sys.stderr)
        return 1
    finally:
        if listener:
            listener.close()
        stop_worker(proc)
        logfile.close()

    report = {
        "tasks": len(lat),
        "seconds": round(seconds, 4),
        "tasks_per_s": round(len(lat) / seconds, 1),
        "p50_ms": round(percentile_ms(lat, 50), 3),
        "p99_ms": round(percentile_ms(lat, 99), 3),
        "max_ms": round(lat[-1] * 1000.0, 3),
        "window": args.window,
        "failed": failed,
        "celery": celery.__version__,
        "concurrency": args.concurrency,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"celery_bench: {report['tasks']} noop tasks, Celery {celery.__version__}, "
              f"prefork concurrency {args.concurrency}, window {args.window}")
        print(f"  throughput  {report['tasks_per_s']:.0f} tasks/s ({seconds:.3f} s)")
        print(f"  latency     p50 {report['p50_ms']:.3f} ms  p99 {report['p99_ms']:.3f} ms  "
              f"max {report['max_ms']:.3f} ms (submit to result)")
    os.unlink(logfile.name)
    if failed:
        print(f"celery_bench: {failed} task(s) did not succeed", file=sys.stderr)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(
        description="Celery 5 noop benchmark (Redis broker and backend), in zmqbench's shape.")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379",
                        help="Redis server (a /db suffix is ignored; see --broker-db)")
    parser.add_argument("--broker-db", type=int, default=2, help="db of the Celery broker")
    parser.add_argument("--backend-db", type=int, default=3, help="db of the result backend")
    parser.add_argument("--tasks", type=int, default=5000, help="tasks to send (default 5000)")
    parser.add_argument("--window", type=int, default=1000,
                        help="at most N tasks sent and not finished (default 1000)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork pool size")
    parser.add_argument("--warmup", type=int, default=20,
                        help="noop round trips before measuring (default 20)")
    parser.add_argument("--stall", type=float, default=10.0,
                        help="give up when no task finishes for S seconds (default 10)")
    parser.add_argument("--start-timeout", type=float, default=60.0,
                        help="seconds to wait for the worker to start (default 60)")
    parser.add_argument("--json", action="store_true",
                        help='print {"tasks", "seconds", "tasks_per_s", "p50_ms", "p99_ms", ...}')
    args = parser.parse_args()
    if args.tasks < 1 or args.window < 1 or args.concurrency < 1 or args.broker_db == args.backend_db:
        parser.error("--tasks, --window and --concurrency must be >= 1, and the dbs must differ")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(args)
    except Interrupted as exc:
        print(f"celery_bench: interrupted ({exc})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
