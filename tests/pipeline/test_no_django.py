"""The pipeline core is plain Python: importing any of it must not import Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, pkgutil, sys
import syncengine.pipeline as pipeline
names = [info.name for info in pkgutil.walk_packages(pipeline.__path__, "syncengine.pipeline.")]
names += [
    "syncengine.dev.sampledata",
    "syncengine.dev.benchmark",
    "syncengine.dev.slice_benchmark",
    "syncengine.dev.emulator",
]
for name in names:
    importlib.import_module(name)
loaded = sorted(name for name in sys.modules if name == "django" or name.startswith("django."))
print(len(names), loaded)
sys.exit(1 if loaded else 0)
"""


def test_no_pipeline_module_imports_django():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    imported, _ = completed.stdout.split(" ", 1)
    assert int(imported) >= 15  # every module was imported, not just the package
