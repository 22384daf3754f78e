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
    """bot.store depends on nothing above it (models, clock only)."""
    for path in (ROOT / "bot" / "store").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot."):
                assert node.module.split(".")[1] in {"store", "models", "clock"}, (
                    path,
                    node.module,
                )
