"""gunicorn.conf.py as gunicorn reads it: values from the environment, the command line over the file."""

import os
import sys

import pytest
from gunicorn.app.wsgiapp import WSGIApplication

from deepfake_site.gunicorn_worker import ThreadWorker
from tests.conftest import ROOT

VARIABLES = ("DETECTOR_BIND", "PORT", "WEB_CONCURRENCY", "WEB_THREADS", "DJANGO_BEHIND_PROXY", "FORWARDED_ALLOW_IPS")


@pytest.fixture
def gunicorn_config(monkeypatch):
    """Gunicorn's configuration for ``gunicorn deepfake_site.wsgi -c gunicorn.conf.py ARGS`` under ``env``."""
    for name in VARIABLES + ("GUNICORN_CMD_ARGS",):
        monkeypatch.delenv(name, raising=False)

    def load(*args, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        argv = ["gunicorn", "deepfake_site.wsgi", "-c", str(ROOT / "gunicorn.conf.py"), *args]
        monkeypatch.setattr(sys, "argv", argv)
        return WSGIApplication("%(prog)s").cfg  # reads the configuration; loads no application

    return load


def test_defaults_are_loopback_one_threaded_worker_per_core_and_no_preload(gunicorn_config):
    cfg = gunicorn_config()
    assert cfg.bind == ["127.0.0.1:8000"]
    assert cfg.workers == len(os.sched_getaffinity(0))
    assert (cfg.threads, cfg.worker_class) == (4, ThreadWorker)  # a slow client pins a thread, not the process
    assert cfg.worker_connections == cfg.threads and cfg.keepalive == 0  # a full worker takes no more
    assert cfg.preload_app is False
    assert (cfg.timeout, cfg.graceful_timeout) == (60, 30)
    assert cfg.max_requests > 0 and cfg.max_requests_jitter > 0
    assert cfg.accesslog == "-"


def test_a_lingering_close_holds_a_pool_thread_not_the_event_loop():
    """A connection refused before its body is read is closed gracefully (up to 2 s of reading what the client
    still sends): the installed gunicorn's ``finish_request`` asks for that close, and the worker hands it to its
    pool instead of running it on the loop that accepts and dispatches every other connection."""
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    closed_on = []

    class Connection:
        def close(self, graceful=False):
            closed_on.append((graceful, threading.current_thread()))

    worker = ThreadWorker.__new__(ThreadWorker)  # only what finish_request reads
    worker.alive, worker.nr_conns = True, 1
    done = Future()
    done.set_result(False)  # the response did not keep the connection alive
    with ThreadPoolExecutor(1) as worker.tpool:
        worker.finish_request(Connection(), done)
    assert worker.nr_conns == 0
    assert [graceful for graceful, _ in closed_on] == [True] and closed_on[0][1] is not threading.current_thread()


def test_workers_come_from_web_concurrency(gunicorn_config):
    assert gunicorn_config(WEB_CONCURRENCY="3").workers == 3


def test_threads_come_from_web_threads(gunicorn_config):
    cfg = gunicorn_config(WEB_THREADS="8")
    assert (cfg.threads, cfg.worker_class, cfg.worker_connections) == (8, ThreadWorker, 8)


def test_a_platform_port_binds_every_interface(gunicorn_config):
    assert gunicorn_config(PORT="5000").bind == ["0.0.0.0:5000"]


def test_detector_bind_wins_over_port(gunicorn_config):
    assert gunicorn_config(PORT="5000", DETECTOR_BIND="unix:/run/detector.sock").bind == ["unix:/run/detector.sock"]


def test_behind_a_proxy_gunicorn_trusts_its_forwarded_headers(gunicorn_config):
    assert gunicorn_config().forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert gunicorn_config(DJANGO_BEHIND_PROXY="true").forwarded_allow_ips == ["*"]
    assert gunicorn_config(DJANGO_BEHIND_PROXY="true", FORWARDED_ALLOW_IPS="10.0.0.5").forwarded_allow_ips == [
        "10.0.0.5"
    ]


def test_the_command_line_wins_over_the_file(gunicorn_config):
    cfg = gunicorn_config("-b", "127.0.0.1:8799", "-w", "2", "--timeout", "120", WEB_CONCURRENCY="8")
    assert (cfg.bind, cfg.workers, cfg.timeout) == (["127.0.0.1:8799"], 2, 120)


def test_the_shipped_nginx_configuration_is_the_one_the_settings_make(settings):
    """deploy/nginx.conf is `manage.py nginx_config` for the defaults: the same request ceiling as the site."""
    from detector.management.commands.nginx_config import render

    shipped = (ROOT / "deploy" / "nginx.conf").read_text()
    assert render(static_root="/srv/deepfake-check/staticfiles") == shipped
    assert f"client_max_body_size {settings.DETECTOR_MAX_REQUEST_MB:.0f}m;" in shipped
    assert "proxy_request_buffering on;" in shipped and "client_body_timeout" in shipped


def test_nginx_accepts_the_shipped_configuration(tmp_path):
    import shutil
    import subprocess

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        pytest.skip("nginx is not installed (Debian's package nginx-light or nginx)")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; include {ROOT / 'deploy' / 'nginx.conf'}; }}\n"
    )
    done = subprocess.run([nginx, "-t", "-c", str(main)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
