"""Configuration: worker settings from an INI file under Celery's names,
environment variables, and the precedence command line > environment >
file > defaults; --help on every program."""

import subprocess

import pytest

from conftest import binary


@pytest.mark.parametrize("program", ["zmqbroker", "zmqworker", "zmqctl"])
def test_help(program):
    res = subprocess.run([binary(program), "--help"], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res
    assert "--" in res.stdout, res.stdout


@pytest.mark.parametrize("program", ["zmqbroker", "zmqworker"])
def test_unknown_option_is_usage_error(program):
    res = subprocess.run([binary(program), "--no-such-option"], capture_output=True, text=True,
                         timeout=10)
    assert res.returncode != 0
    assert res.stderr.strip()


def test_worker_urls_from_config_file(cluster, broker, client, tmp_path):
    conf = tmp_path / "worker.ini"
    conf.write_text(f"; everything from the file\n"
                    f"broker_url = {broker.endpoint}\n"
                    f"result_backend = {cluster.backend_url}\n"
                    f"worker_concurrency = 3\n"
                    f"worker_prefetch_multiplier = 2\n")
    w = cluster.start_worker(queues=["cfg"], concurrency=None, config=conf, use_cli_urls=False,
                             env={"ZMQ_BROKER_URL": None, "RESULT_BACKEND": None})
    (entry,) = [e for e in client.control("workers") if e["name"] == w.name]
    assert entry["concurrency"] == 3
    assert entry["credit"] + entry["in_flight"] == 6
    tid = client.submit_ok("builtin.add", args=[6, 7], queue="cfg")
    assert cluster.wait_result(tid)["result"] == 13


def test_worker_urls_from_environment(cluster, broker, client):
    # The fixture exports ZMQ_BROKER_URL and RESULT_BACKEND for this cluster.
    w = cluster.start_worker(queues=["envq"], concurrency=1, use_cli_urls=False)
    tid = client.submit_ok("builtin.add", args=[1, 2], queue="envq")
    assert cluster.wait_result(tid)["result"] == 3
    assert w.proc.alive()


def test_command_line_beats_file(cluster, broker, client, tmp_path):
    conf = tmp_path / "worker.ini"
    conf.write_text("worker_concurrency = 3\n")
    w = cluster.start_worker(queues=["cfg2"], concurrency=1, config=conf)
    (entry,) = [e for e in client.control("workers") if e["name"] == w.name]
    assert entry["concurrency"] == 1


def test_environment_beats_file(cluster, broker, client, tmp_path):
    conf = tmp_path / "worker.ini"
    conf.write_text("broker_url = tcp://127.0.0.1:1\n")
    # ZMQ_BROKER_URL (exported by the fixture) must win over the file's dead URL.
    cluster.start_worker(queues=["cfg3"], concurrency=1, config=conf, use_cli_urls=False)
    tid = client.submit_ok("builtin.noop", queue="cfg3")
    assert cluster.wait_result(tid)["status"] == "SUCCESS"


def test_bad_config_file_is_refused(cluster, broker, tmp_path):
    conf = tmp_path / "bad.ini"
    conf.write_text("task_max_retries = three\nno_such_setting = 1\n")
    res = subprocess.run([binary("zmqworker"), "--config", str(conf), "-b", broker.endpoint],
                         capture_output=True, text=True, timeout=10,
                         env=cluster.env())
    assert res.returncode != 0
    assert "bad.ini" in res.stderr, res.stderr


def test_broker_settings_from_config_file(cluster, tmp_path):
    import ztp
    from conftest import free_port
    port = free_port()
    conf = tmp_path / "broker.ini"
    conf.write_text("[broker]\n"
                    f"broker_bind = tcp://127.0.0.1:{port}\n"
                    f"broker_events_bind = tcp://127.0.0.1:{free_port()}\n"
                    "broker_heartbeat_ms = 250\n"
                    "broker_liveness = 4\n")
    proc = subprocess.Popen([binary("zmqbroker"), "--config", str(conf),
                             "--data-dir", str(tmp_path / "data"),
                             "--logfile", str(tmp_path / "b.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert ztp.wait_ping(f"tcp://127.0.0.1:{port}", timeout=10,
                             is_alive=lambda: proc.poll() is None)
        proc.terminate()
        rc = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0
