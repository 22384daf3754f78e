"""A throwaway PostgreSQL server for the test session (FACTS.md: the system's binaries).

`initdb` into a fresh temporary directory, `pg_ctl start` on a free loopback port with the
socket in that directory, and `pg_ctl stop` + removal in a `finally`. As root (CI, this
machine) it runs as the `postgres` user, since initdb refuses root. Each test gets its own
database, copied from a migrated template (`CREATE DATABASE … TEMPLATE`), so tests never
see each other's rows and the migrations run once per session.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PACKAGE = "postgresql"  # Debian/Ubuntu: the server binaries (initdb, pg_ctl)
TEMPLATE = "shopbot_template"


def pg_bin() -> Path:
    """The folder with initdb and pg_ctl: $SHOPBOT_PG_BIN, the newest
    /usr/lib/postgresql/*/bin, or the PATH."""
    configured = os.environ.get("SHOPBOT_PG_BIN")
    if configured:
        return Path(configured)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
        f"`{DEBIAN_PACKAGE}` (bash .ci/system-packages does) or set SHOPBOT_PG_BIN"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    port: int
    root: Path
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def fresh_name(self) -> str:
        return f"t{os.getpid()}_{next(self._names)}"


def _as_postgres() -> list[str]:
    """Prefix for running a server binary: `runuser -u postgres --` as root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root but there is no `postgres` user to run initdb as: install the "
            f"Debian package `{DEBIAN_PACKAGE}` (it creates one)"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """Start PostgreSQL; stop it and delete its files however the block ends."""
    binaries = pg_bin()
    prefix = _as_postgres()
    root = Path(tempfile.mkdtemp(prefix="shopbot-pg-"))
    if prefix:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = free_port()
    started = False
    try:
        subprocess.run(
            [*prefix, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U",
             "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        options = (
            f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
             "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        started = True
        yield PgServer(port=port, root=root)
    except subprocess.CalledProcessError as exc:
        log = root / "log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}{tail}") from exc
    finally:
        if started:
            subprocess.run(
                [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                 "stop"],
                capture_output=True,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
