"""Report: the lines a setup check writes as it goes, with its problems counted."""

from __future__ import annotations

from collections.abc import Callable


class Report:
    """One line per finding: `part: ok, …`, `part: …` (a note) or `part: FAILED, …`."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.problems = 0

    def ok(self, part: str, text: str) -> None:
        self.out(f"{part}: ok, {text}")

    def note(self, part: str, text: str) -> None:
        self.out(f"{part}: {text}")

    def problem(self, part: str, text: str) -> None:
        """One line per problem: what is wrong and what to do."""
        self.problems += 1
        self.out(f"{part}: FAILED, {text}")
