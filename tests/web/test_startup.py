"""Start-up: checks catch a bad bundle, and only server processes load TensorFlow."""

import os
import shutil
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from detector.apps import serves_requests
from tests.conftest import ROOT


def test_check_fails_clearly_on_a_damaged_bundle(settings, tiny_bundle, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_bundle, damaged)
    (damaged / "model.keras").write_bytes(b"garbage")
    settings.DETECTOR_MODEL = damaged
    with pytest.raises(SystemCheckError, match=r"detector.E001.*checksum mismatch"):
        call_command("check")


def test_check_fails_clearly_on_a_missing_bundle(settings, tmp_path):
    settings.DETECTOR_MODEL = tmp_path / "missing"
    with pytest.raises(SystemCheckError, match="model bundle not found"):
        call_command("check")


def test_check_passes_on_a_good_bundle(settings, tiny_bundle):
    settings.DETECTOR_MODEL = tiny_bundle
    call_command("check")


def run_manage(args, tmp_path, bundle):
    code = (
        "import runpy, sys; sys.argv = ['manage.py'] + sys.argv[1:]; "
        "runpy.run_path('manage.py', run_name='__main__'); "
        "print('TF-LOADED' if 'tensorflow' in sys.modules else 'NO-TF')"
    )
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DETECTOR_MODEL": str(bundle)}
    env.pop("DETECTOR_PRELOAD", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args", [["migrate", "--noinput", "-v", "0"], ["check"], ["makemigrations", "--check", "--dry-run"]]
)
def test_management_commands_do_not_load_tensorflow(tmp_path, tiny_bundle, args):
    result = run_manage(args, tmp_path, tiny_bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("NO-TF")


@pytest.mark.parametrize(
    "argv, environ, expected",
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver"], {}, False),  # the auto-reloader's parent only watches files
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["/srv/.venv/bin/gunicorn", "deepfake_site.wsgi"], {}, True),
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "check"], {}, False),
        (["/usr/bin/pytest"], {}, False),
    ],
)
def test_only_server_processes_load_the_model_at_start(argv, environ, expected):
    assert serves_requests(argv, environ) is expected


def test_collectstatic_works_with_the_production_storage(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    assert list((tmp_path / "static" / "detector").glob("site.*.css"))


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/history/", "/admin/login/"])
def test_pages_load_nothing_from_other_sites(client, url):
    import re

    page = client.get(url).content.decode()
    assert not re.search(r'(src|href)="(https?:)?//', page)


def deploy_check(tmp_path, tiny_bundle, **overrides):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DETECTOR_")) and key not in ("DATABASE_URL", "CACHE_URL", "EMAIL_URL")
    }
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x7#Qm2!vR9$kL4@pZ8^wT1&nB6*cY3%hJ5(eU0)gA-fD_sK+oI=",
        DJANGO_ALLOWED_HOSTS="deepfake-check.example.org",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DETECTOR_MODEL=str(tiny_bundle),
        CACHE_URL="redis://127.0.0.1:6379/0",
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.org:587",
    )
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path, tiny_bundle):
    result = deploy_check(tmp_path, tiny_bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_warns_of_a_rate_limit_counted_per_process(tmp_path, tiny_bundle):
    result = deploy_check(tmp_path, tiny_bundle, CACHE_URL="locmemcache://", WEB_CONCURRENCY="2")
    assert result.returncode != 0 and "detector.W001" in result.stderr and "2 web processes" in result.stderr
    assert deploy_check(tmp_path, tiny_bundle, CACHE_URL="locmemcache://", WEB_CONCURRENCY="1").returncode == 0


def test_the_deploy_check_warns_of_mail_printed_to_the_logs(tmp_path, tiny_bundle):
    result = deploy_check(tmp_path, tiny_bundle, EMAIL_URL="consolemail://")
    assert result.returncode != 0 and "detector.W002" in result.stderr


def test_production_refuses_to_start_without_a_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DJANGO_DEBUG"] = "false"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    "debug, key, words",
    [
        ("false", "", "DJANGO_SECRET_KEY is set but empty"),
        ("true", "", "DJANGO_SECRET_KEY is set but empty"),
        ("true", "   ", "DJANGO_SECRET_KEY is set but empty"),
        ("false", "short-key", "DJANGO_SECRET_KEY is 9 characters; at least 32 are needed"),
    ],
)
def test_an_empty_or_short_secret_key_is_refused_at_start_in_one_line(debug, key, words):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_DEBUG=debug, DJANGO_SECRET_KEY=key)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert words in result.stderr.strip().splitlines()[-1]  # the last line says it all


def test_a_long_key_starts_in_production(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_DEBUG="false", DJANGO_SECRET_KEY="k" * 32, DJANGO_ALLOWED_HOSTS="example.org")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "started" in result.stdout


def test_errors_are_logged_with_their_traceback_to_stderr_in_production():
    code = (
        "import logging\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n"
        "    logging.getLogger('django.request').exception('Internal Server Error: /')\n"
    )
    env = {**os.environ, "DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "x" * 50, "DJANGO_ALLOWED_HOSTS": "example.org"}
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ERROR django.request: Internal Server Error: /" in done.stderr
    assert "Traceback" in done.stderr and "ZeroDivisionError" in done.stderr
