"""The library's layering, read from its import statements: no import points upward and
none goes round in a cycle, so a reader can start at the bottom."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "fusionlab"

LAYERS = [
    # lowest first; a module may import from its own layer and the layers below
    {"fusionlab", "fusionlab.arguments", "fusionlab.io", "fusionlab.weights",
     "fusionlab.outputs", "fusionlab.layers", "fusionlab.boundaries", "fusionlab.distributed",
     "fusionlab.speed", "fusionlab.checkpoints"},
    {"fusionlab.encoders", "fusionlab.metrics", "fusionlab.losses", "fusionlab.datasets"},
    {"fusionlab.models", "fusionlab.schematics", "fusionlab.viz", "fusionlab.notebook"},
    {"fusionlab.evaluation"},
    {"fusionlab.train", "fusionlab.bench"},
    {"fusionlab.experiments"},
    {"fusionlab.__main__"},
]


def _layer(module: str) -> int:
    for depth in range(len(module.split(".")), 0, -1):
        prefix = ".".join(module.split(".")[:depth])
        for i, layer in enumerate(LAYERS):
            if prefix in layer:
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _is_module(name: str) -> bool:
    path = ROOT.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports() -> dict[str, set[str]]:
    graph = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fusionlab"):
                names = [f"{node.module}.{a.name}" for a in node.names]
                # `from fusionlab import distributed` imports a module (or package), not a name
                found |= {n for n in names if _is_module(n)} or {node.module}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("fusionlab")}
        graph[module] = found - {module}
    return graph


def test_no_import_points_upward():
    upward = [(m, i) for m, imported in _imports().items() for i in imported
              if _layer(i) > _layer(m)]
    assert upward == []


def test_no_import_cycle():
    graph = _imports()

    def reaches(start, goal, seen):
        for nxt in graph.get(start, ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, goal, seen):
                    return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert cycles == []
