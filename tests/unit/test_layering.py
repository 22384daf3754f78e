"""Dependencies point one way: only the composition root and the adapter import discord."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"bot/app.py", "bot/discord_adapter.py"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_bot_does_not_import_discord_or_cogs() -> None:
    """No module in bot/ except app.py and discord_adapter.py imports discord; none imports cogs."""
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found = imports_of(path)
        if "cogs" in found or ("discord" in found and rel not in ALLOWED):
            offenders.append(rel)
    assert offenders == []


def test_cogs_only_parse_and_render() -> None:
    """Cogs reach data through services: no bot.store import, no `.store` attribute."""
    offenders = []
    for path in sorted((ROOT / "cogs").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot.store"):
                offenders.append(f"{rel}:{node.lineno} imports {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{rel}:{node.lineno} imports {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("bot.store")
                ]
            elif isinstance(node, ast.Attribute) and node.attr == "store":
                offenders.append(f"{rel}:{node.lineno} uses .store")
    assert offenders == []


def test_no_sql_outside_the_store() -> None:
    """Raw SQL lives in bot/store/ only, so a second backend replaces one package."""
    sql = ("SELECT ", "INSERT INTO", "DELETE FROM", "SAVEPOINT", "PRAGMA ", "conn.execute(")
    offenders = []
    for folder in ("bot", "cogs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("bot/store/"):
                continue
            text = path.read_text()
            offenders += [f"{rel}: {word.strip()}" for word in sql if word in text]
    assert offenders == []


def test_store_imports_no_services() -> None:
    """bot.store depends on nothing above it (models, clock, sharding: leaves only)."""
    for path in (ROOT / "bot" / "store").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot."):
                assert node.module.split(".")[1] in {"store", "models", "clock", "sharding"}, (
                    path,
                    node.module,
                )


def bot_imports() -> dict[str, set[str]]:
    """bot.* module → the bot.* modules it imports (a package counts as its __init__)."""
    modules = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            found |= {target for target in targets if target in modules and target != name}
        graph[name] = found
    return graph


def test_no_import_cycle_and_no_type_checking_back_reference_in_bot() -> None:
    """Services receive what they need (bot/services.py); none imports one that imports it."""
    graph = bot_imports()
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in trail:
                cycles.append(" → ".join([*trail[trail.index(target) :], target]))
            elif target not in done:
                visit(target, [*trail, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    packages = {"bot.store", "bot.billing"}  # a package's __init__ re-exports its modules
    real = [c for c in cycles if not any(c.startswith(f"{p} → {p}.") for p in packages)]
    assert real == []
    hidden = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "bot").rglob("*.py")
        if "TYPE_CHECKING" in path.read_text()
    ]
    assert hidden == []
