"""Gunicorn in production: ``gunicorn deepfake_site.wsgi -c gunicorn.conf.py`` (the Procfile's ``web``).

Values come from the process environment (not from ``.env``). Options on the command line or in
``GUNICORN_CMD_ARGS`` win over this file, e.g. ``GUNICORN_CMD_ARGS="--timeout 120"``.
"""

import os

import environ

env = environ.Env()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a container's cpuset)
    except AttributeError:
        return os.cpu_count() or 1


if env("DETECTOR_BIND", default=""):
    bind = env("DETECTOR_BIND")
elif env("PORT", default=""):
    bind = f"0.0.0.0:{env('PORT')}"  # platforms that hand the port over (Heroku, Dokku, Render)
else:
    bind = "127.0.0.1:8000"

# Each worker process holds its own model (100-350 MB RSS with the LiteRT engine) and keeps a core busy
# while it analyses: one per core (workers x DETECTOR_THREADS about the cores), not 2 x cores + 1.
workers = env.int("WEB_CONCURRENCY", default=_cores())
# gthread workers: a connection holds a thread, not the process, so a client that sends its request slowly
# (a byte a second) pins one thread while the others answer /healthz, pages and uploads. gunicorn itself has no
# header or body read timeout: production runs behind a buffering proxy (deploy/nginx.conf) that reads the
# whole request before passing it on. Analysis is CPU-bound and a worker's model runs one call at a time (its
# interpreter is locked), so more threads add no analysis throughput, only room for the other requests.
threads = env.int("WEB_THREADS", default=4)
# gunicorn's gthread worker with its lingering close moved off the event loop (see the module).
worker_class = "deepfake_site.gunicorn_worker.ThreadWorker"
# A worker takes no more connections than it has threads: one whose threads are all held (slow clients, long
# analyses) stops accepting, and the kernel hands new connections to a worker that has a thread free, rather
# than queueing them inside the busy one. Hence no keep-alive either (an idle kept connection would hold a place).
worker_connections = threads

# An upload is analysed in the request unless Celery takes it (CELERY_BROKER_URL): about 0.1 s a
# face, a batch of 20 files a few seconds, a worker's first request after start longer.
timeout = 60
graceful_timeout = 30
keepalive = 0

# No preload: the model must be loaded in each worker after the fork (detector.apps loads it in
# processes that serve requests); LiteRT and TensorFlow thread pools do not survive a fork.
preload_app = False

# Leak insurance: a worker is replaced after this many requests, staggered by the jitter. A new
# worker loads the model again (a few seconds), so not too often.
max_requests = 5000
max_requests_jitter = 500

# The heartbeat file on tmpfs: a disk-backed /tmp can stall workers in containers.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

# Django trusts the proxy's X-Forwarded-Proto when DJANGO_BEHIND_PROXY is set, which presumes that
# only the proxy can reach gunicorn; gunicorn then trusts the proxy's address too, whatever it is.
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    forwarded_allow_ips = env("FORWARDED_ALLOW_IPS", default="*")
