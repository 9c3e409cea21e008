"""The mock backend (tests/mockbackend) is pure asyncio: `make run`'s demo starts it from a
runtime-only install, and the benchmark runs it beside Dragoman without Django's cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MOCK = REPO / "tests" / "mockbackend"


def test_importing_every_mock_module_loads_no_django() -> None:
    modules = sorted(f"tests.mockbackend.{p.stem}".removesuffix(".__init__") for p in MOCK.glob("*.py"))
    code = (
        f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    # No DJANGO_SETTINGS_MODULE, nothing of the caller's environment but PATH.
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests.mockbackend.__main__" in modules and "tests.mockbackend.server" in modules


def test_help_runs_without_django() -> None:
    result = subprocess.run([sys.executable, "-m", "tests.mockbackend", "--help"], cwd=REPO, capture_output=True,
                            text=True, check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout
