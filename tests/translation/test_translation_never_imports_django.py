"""translation/ is the protocol core: importable and testable without Django."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TRANSLATION = Path(__file__).resolve().parents[2] / "translation"


def test_no_module_in_translation_imports_django() -> None:
    offenders = []
    for path in sorted(TRANSLATION.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n == "django" or n.startswith("django.")]
    assert offenders == []


def test_importing_every_translation_module_loads_no_django() -> None:
    modules = sorted(
        ".".join(p.relative_to(TRANSLATION.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in TRANSLATION.rglob("*.py")
    )
    code = (
        f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=TRANSLATION.parent, capture_output=True,
                            text=True, check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TRANSLATION.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "translation.openai_chat.stream" in modules
