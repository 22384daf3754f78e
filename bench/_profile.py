"""Sampling profile of the bot process with py-spy, and a flame summary (top frames by share).

`Profiler(pid, path)` starts `py-spy record --format raw` (collapsed stacks) on a running
process; `stop()` waits for it and `summary(path)` returns the frames with the largest
share of samples: `self` (the frame was on top: where the time is spent) and `total` (the
frame was anywhere on the stack: what the time is spent for). py-spy is optional: without
it (or without ptrace rights) profiling is skipped with a message, never a failure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, path: Path, seconds: float, rate: int = 200) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None
        exe = py_spy()
        if exe is None:
            print("profile skipped: py-spy is not installed (pip install py-spy)")
            return
        command = [exe, "record", "--nonblocking", "--threads", "--format", "raw"]
        command += ["--rate", str(rate), "--duration", str(max(int(seconds), 1))]
        command += ["--output", str(path), "--pid", str(pid)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603

    def stop(self) -> bool:
        if self.proc is None:
            return False
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.path.exists():
            print(f"profile failed: {err.decode(errors='replace')[-300:]}")
            return False
        return True


def _frame(raw: str) -> str:
    """`func (path/to/file.py:123)` → `func (file.py)`: lines merged per function."""
    name, _, where = raw.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    marker = "site-packages/"
    file = file.split(marker, 1)[1] if marker in file else file.rsplit("/bot/", 1)[-1]
    return f"{name} ({file})"


def summary(path: Path, top: int = 15, ours: bool = False) -> list[tuple[str, float, float]]:
    """(frame, self %, total %) for the `top` frames by self share (`ours`: frames of
    bot/ and cogs/ by total share)."""
    self_n: Counter[str] = Counter()
    total_n: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("thread (")] or frames
        samples += n
        self_n[frames[-1]] += n
        for frame in set(frames):
            total_n[frame] += n
    if not samples:
        return []
    if ours:
        mine = ("bot/", "cogs/")
        order = [f for f, _ in total_n.most_common() if f.split(" (", 1)[-1].startswith(mine)]
        order = order[:top]
    else:
        order = [frame for frame, _ in self_n.most_common(top)]
    return [(f, 100 * self_n[f] / samples, 100 * total_n[f] / samples) for f in order]


def print_summary(path: Path, top: int = 15) -> None:
    for ours, title in ((False, "top frames by self share"), (True, "our code by total share")):
        print(f"\nprofile {path.name} (py-spy, all threads, idle excluded): {title}")
        print(f"  {'self %':>6} {'total %':>7}  frame")
        for frame, own, total in summary(path, top, ours):
            print(f"  {own:6.1f} {total:7.1f}  {frame}")


if __name__ == "__main__":
    print_summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15)
