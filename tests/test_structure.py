"""The shape of the code: imports run one way, the type checker agrees with the hints."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the app modules it imports (at any depth of the file, TYPE_CHECKING blocks included)."""
    # app/deploy holds the shipped deployment files (gunicorn.conf.py among them), not modules
    modules = {_module_of(path): path for path in APP.rglob("*.py") if path.relative_to(APP).parts[0] != "deploy"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def test_the_import_graph_of_app_has_no_circle():
    graph = import_graph()
    assert "app.services" in graph["app.api"]  # the walk really sees relative imports
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_domain_modules_do_not_import_flask():
    """OTP rules, limits, phones, the store, senders, login methods and mesibo know nothing of HTTP serving."""
    graph = import_graph()
    web = {
        "app.api",
        "app.body",
        "app.monitoring",
        "app.receipts",
        "app.saml_acs",
        "app.cli",
        "app.admin",
        "app.admin_lists",
        "app",
        "app.console",
    }
    for module in graph:
        if module in web:
            continue
        source = (APP / Path(*module.split(".")[1:])).with_suffix(".py")
        if not source.exists():
            source = APP / Path(*module.split(".")[1:]) / "__init__.py"
        text = source.read_text()
        assert "from flask" not in text and "import flask" not in text and "werkzeug" not in text, module
        assert not graph[module] & web, f"{module} imports {graph[module] & web}"


@pytest.mark.skipif(shutil.which("mypy", path=str(Path(sys.executable).parent)) is None, reason="needs mypy")
@pytest.mark.slow  # mypy in a process of its own
def test_mypy_finds_no_errors_in_app():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mypy"), "app"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_in_app_is_longer_than_about_300_lines():
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in APP.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 300} == {}
