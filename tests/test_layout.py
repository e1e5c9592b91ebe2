"""The package's shape: small modules, public names only across modules (and from the
tests), no import cycle, and one module that asks the machine about CUDA."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "atari_dqn"
TESTS = Path(__file__).resolve().parent
MAX_LINES = 400


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


MODULES = _modules()


def _imports(tree: ast.Module) -> list[tuple[str, str | None]]:
    """(module, name or None) of every atari_dqn import, at any depth (functions included)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.startswith("atari_dqn")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("atari_dqn"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                out.append((submodule, None) if submodule in MODULES else (node.module, alias.name))
    return out


def test_no_module_is_over_400_lines():
    sizes = {
        path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 20 and {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_no_module_uses_another_modules_private_names():
    offences = []
    for name, tree in MODULES.items():
        aliases = {}  # local name -> atari_dqn module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("atari_dqn"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    elif alias.name.startswith("_") and node.module != name:
                        offences.append(f"{name} imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("atari_dqn") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{name} reads {aliases[node.value.id]}.{node.attr}")
    assert offences == []


def test_the_import_graph_has_no_cycle_even_through_imports_inside_functions():
    graph = {
        name: {module for module, _ in _imports(tree) if module in MODULES and module != name}
        for name, tree in MODULES.items()
    }
    assert "atari_dqn.parts" in graph["atari_dqn.loop"]  # the graph is read, not empty
    assert "atari_dqn.runs" in graph["atari_dqn.cli"]  # imports inside functions too
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    cycles = [c for name in sorted(graph) if name not in state and (c := visit(name, []))]
    assert cycles == []


def test_only_the_runtime_asks_torch_whether_cuda_is_present():
    # The runtime is resolved once per run (atari_dqn/runtime.py); everything else is handed
    # its answer, so no part decides "auto on CUDA" on its own.
    askers = sorted(
        name
        for name, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "is_available"
        and ast.unparse(node.value).endswith("cuda")
    )
    assert askers == ["atari_dqn.runtime"]


# A named tuple's public methods are spelt with one underscore, to stay out of its fields.
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _private_reads(tree: ast.Module) -> list[str]:
    """`from atari_dqn... import _x`, and `obj._x` on anything but `self` or `cls` (a named
    tuple's own methods aside)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("atari_dqn"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in NAMEDTUPLE_API
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_test_reads_a_private_name_of_another_module():
    # Tests hold the public behaviour: a private name may change without a test noticing.
    offences = {
        path.name: reads
        for path in sorted(TESTS.glob("*.py"))
        if (reads := _private_reads(ast.parse(path.read_text())))
    }
    assert offences == {}
    assert _private_reads(ast.parse("from atari_dqn.video import _x\nvec._procs"))  # it sees
