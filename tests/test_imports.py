"""No import circle: every module of ``detector`` imports on its own, first, in a fresh interpreter.

Django is set up once in a child interpreter; each module is then imported in a fork of it, so no module
finds another already imported that would hide a circle. The import contracts (``make lint``) say the same
statically.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = r"""
import importlib, os, sys, traceback
import django
django.setup()
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED:" + ",".join(failed))
"""


def modules() -> list[str]:
    # ml's training, export and evaluation import TensorFlow only when they run, so importing them is cheap.
    paths = (ROOT / "detector").rglob("*.py")
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in paths
        if "migrations" not in p.parts
    )


def test_every_module_imports_alone_in_a_fresh_interpreter():
    names = modules()
    assert "detector.dispatch" in names and "detector.services.cleanup" in names
    env = {"DJANGO_SETTINGS_MODULE": "deepfake_site.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, **env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("FAILED:"), done.stderr[-3000:]
