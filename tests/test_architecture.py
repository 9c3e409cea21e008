"""The layers' import arrows: gateway → translation, gateway → inspector, inspector →
translation, and nothing else. translation/ is the protocol core (no Django, no gateway, no
inspector: importable and testable alone); the inspector is handed what it needs from the gateway
at start-up (``inspector.hooks``) instead of importing it. Every import counts, including those
inside functions and under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRANSLATION = REPO / "translation"

# What each package may not import (a module or any of its submodules).
FORBIDDEN = {
    "translation": ("django", "gateway", "inspector"),
    "inspector": ("gateway",),
    "gateway": (),
}


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; relative imports resolved against its package."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def _offenders(package: str, root: Path = REPO) -> list[str]:
    banned = FORBIDDEN[package]
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in _imports(path, root):
            if any(module == b or module.startswith(b + ".") for b in banned):
                out.append(f"{path.relative_to(root)}:{line}: {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    assert _offenders(package) == []


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    (tmp_path / "inspector" / "sub").mkdir(parents=True)
    (tmp_path / "inspector" / "sub" / "probe.py").write_text(
        "def f():\n    from gateway.services import apikeys_touch\n    import gateway.ids\n"
        "    from .. import views\n    from .views import json_pretty\n")
    assert _offenders("inspector", tmp_path) == ["inspector/sub/probe.py:2: gateway.services",
                                                 "inspector/sub/probe.py:3: gateway.ids"]
    assert [m for _, m in _imports(tmp_path / "inspector" / "sub" / "probe.py", tmp_path)][2:] == [
        "inspector", "inspector.sub.views"]


def test_importing_every_translation_module_loads_no_django() -> None:
    modules = sorted(
        ".".join(p.relative_to(TRANSLATION.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in TRANSLATION.rglob("*.py")
    )
    code = (
        f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'gateway', 'inspector'))\n"
        "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=TRANSLATION.parent, capture_output=True,
                            text=True, check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TRANSLATION.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "translation.openai_chat.stream" in modules


# docs/architecture.md names each hop as `path/to/file.py:Name` (or `Name.attribute`).
_DOC_REFERENCE = re.compile(r"`((?:gateway|inspector|translation)/[\w/]+\.py):([\w.]+)`")


def _defined(path: Path, dotted: str) -> bool:
    """Whether ``dotted`` (``func``, ``Class`` or ``Class.method``) is defined at the top of ``path``."""
    scope: list[ast.stmt] = ast.parse(path.read_text()).body
    for name in dotted.split("."):
        found = None
        for node in scope:
            names = [node.name] if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else [
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            if name in names:
                found = node
                break
        if found is None:
            return False
        scope = found.body if isinstance(found, ast.ClassDef) else []
    return True


def test_architecture_doc_names_only_code_that_exists() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    references = _DOC_REFERENCE.findall(text)
    assert len(references) >= 20, "the hop list should name the code it passes through"
    missing = [f"{path}:{name}" for path, name in references
               if not (REPO / path).is_file() or not _defined(REPO / path, name)]
    assert not missing, f"docs/architecture.md names code that does not exist: {missing}"
