"""Issue 10's deployment kit, tested as an operator uses it: the systemd units verify, the
Docker image's entrypoint runs exactly as the Dockerfile writes it, and a backup taken by the
backup unit while the bot runs restores into a fresh data directory with every order."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.fakes.discord import FakeDiscord
from tests.fakes.stripe import FakeStripe
from tests.harness import WEBHOOK_SECRET, BotProcess
from tests.shop import ADMIN, BUYER, FRIEND, Shop, open_shop, text_of

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = ("shopbot.service", "shopbot-backup.service", "shopbot-backup.timer")
UNIT_SHOPBOT = "/opt/shopbot/.venv/bin/shopbot"  # where docs/DEPLOY.md installs it
UNIT_CONFIG = "/etc/shopbot/config.toml"
VENV_SHOPBOT = Path(sys.executable).with_name("shopbot")


# --- systemd -------------------------------------------------------------------------------


def system_tool(name: str) -> str:
    """The tool's path; installed through .ci/system-packages when missing (never skipped)."""
    if shutil.which(name) is None:
        subprocess.run(["bash", str(REPO / ".ci/system-packages")], check=True, timeout=600)
    path = shutil.which(name)
    assert path, f"{name} missing even after .ci/system-packages"
    return path


def unit_settings(name: str) -> dict[str, list[str]]:
    """Key → every value it is given in a unit file (keys like SystemCallFilter repeat)."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the three units; verify insists that ExecStart's binary
    exists, so each unit is verified as a copy whose /opt/shopbot/.venv/bin/shopbot is this
    checkout's installed shopbot (the only change). The service is hardened as promised."""
    analyze = system_tool("systemd-analyze")
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        (tmp_path / name).write_text(text.replace(UNIT_SHOPBOT, str(VENV_SHOPBOT)))
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "shopbot" not in output, output  # no warning about any of our units
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(tmp_path / UNITS[0])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr

    service = unit_settings("shopbot.service")
    assert service["ExecStart"] == [f"{UNIT_SHOPBOT} run --config {UNIT_CONFIG}"]
    for key, value in {
        "User": "shopbot",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/shopbot",
        "Restart": "on-failure",
        "EnvironmentFile": "/etc/shopbot/shopbot.env",
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "ProtectHome": "true",
    }.items():
        assert service[key] == [value], key
    timer = unit_settings("shopbot-backup.timer")
    assert timer["Persistent"] == ["true"] and timer["OnCalendar"]


def systemd_command(line: str, env: dict[str, str]) -> list[str]:
    """An Exec line as systemd runs it: `%%` → `%`, `${VAR}` → its value, `$$` → `$`."""
    line = line.replace("%%", "%")
    line = re.sub(r"(?<!\$)\$\{(\w+)\}", lambda m: env[m.group(1)], line)
    return shlex.split(line.replace("$$", "$"))


def run_backup_unit(config: Path, backup_dir: Path) -> list[subprocess.CompletedProcess[str]]:
    """shopbot-backup.service's ExecStart then ExecStartPost (which systemd runs only after
    ExecStart succeeded), with the unit's Environment=, BACKUP_DIR moved to `backup_dir`, and
    the installed shopbot and config paths pointed at this test's."""
    unit = unit_settings("shopbot-backup.service")
    env = dict(os.environ)
    for assignment in unit["Environment"]:
        key, value = assignment.split("=", 1)
        env[key] = value
    env["BACKUP_DIR"] = str(backup_dir)
    results = []
    for key in ("ExecStart", "ExecStartPost"):
        (line,) = unit[key]
        line = line.replace(UNIT_SHOPBOT, str(VENV_SHOPBOT)).replace(UNIT_CONFIG, str(config))
        result = subprocess.run(
            systemd_command(line, env), env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{key}: {result.stdout}{result.stderr}"
        results.append(result)
    return results


def orders_of(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT * FROM orders ORDER BY id"))
    finally:
        conn.close()


async def test_backup_taken_while_running_restores_every_order(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """The backup unit, run while the bot serves paid orders, writes a dated file and prunes
    files past KEEP_DAYS; docs/DEPLOY.md's restore (copy it over database.path in a fresh data
    directory, start) gives a bot with every order intact and its buyers' purchases."""
    backups = tmp_path / "backups"
    backups.mkdir()
    now = time.time()
    stale, kept = backups / "shop-20200101T000000Z.db", backups / "shop-yesterday.db"
    for path, age_days in ((stale, 30), (kept, 1)):
        path.write_bytes(b"an older backup")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    (tmp_path / "live").mkdir()
    async with open_shop(tmp_path / "live", fake_discord, fake_stripe) as shop:
        await shop.add_product()
        for user in (BUYER, FRIEND):
            await shop.pay(await shop.buy(user))
        await shop.wait(lambda: shop.has_role(BUYER) and shop.has_role(FRIEND), "roles granted")
        paid = "SELECT COUNT(*) FROM orders WHERE status = 'paid'"
        await shop.wait(lambda: shop.bot.scalar(paid) == 2, "two paid orders")
        backup_run, _ = await asyncio.to_thread(run_backup_unit, shop.bot.config_path, backups)
        live = shop.bot.db_path
    live_orders = orders_of(live)
    assert len(live_orders) == 2

    dated = [p for p in backups.iterdir() if re.fullmatch(r"shop-\d{8}T\d{6}Z\.db", p.name)]
    assert not stale.exists() and kept.exists()  # retention: past KEEP_DAYS only
    (backup,) = dated
    assert f"backed up {live} to {backup}" in backup_run.stdout

    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    guild_id = next(iter(fake_discord.guilds))
    bot = BotProcess(restored_dir, fake_discord, fake_stripe, [guild_id])
    shutil.copyfile(backup, bot.db_path)  # docs/DEPLOY.md: copy the backup over database.path
    try:
        await bot.start()
        assert orders_of(bot.db_path) == live_orders
        restored = Shop(fake_discord, fake_stripe, bot, shop.sender, guild_id, 0, 0)
        for user in (BUYER, FRIEND):
            assert "VIP" in text_of(await restored.command(user, "purchases"))
    finally:
        assert await bot.stop() == 0


# --- Docker --------------------------------------------------------------------------------


@dataclass
class Dockerfile:
    """The instructions of the repo's Dockerfile, continuation lines joined, comments out."""

    instructions: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        parsed, pending = cls(), ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            word, _, rest = (pending + line).partition(" ")
            parsed.instructions.append((word.upper(), rest.strip()))
            pending = ""
        return parsed

    def all(self, word: str) -> list[str]:
        return [rest for instr, rest in self.instructions if instr == word]

    def one(self, word: str) -> str:
        (value,) = self.all(word)
        return value

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                values[key] = value
        return values

    def healthcheck(self) -> list[str]:
        """The exec-form command after the HEALTHCHECK options."""
        return json.loads(self.one("HEALTHCHECK").split(" CMD ", 1)[1])


def docker_context(dest: Path) -> Path:
    """What `COPY . /src` receives: the repo less what .dockerignore excludes."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        for pattern in patterns:
            steps = pattern.strip("/").split("/")
            if steps[0] == "**":
                if any(fnmatch.fnmatchcase(part, steps[-1]) for part in parts):
                    return True
            elif fnmatch.fnmatchcase("/".join(parts[: len(steps)]), pattern.strip("/")):
                return True
        return False

    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO)
        dirs[:] = [d for d in dirs if not ignored((rel_root / d).as_posix())]
        for name in files:
            rel = (rel_root / name).as_posix()
            if not ignored(rel):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
    return dest


def docker_engine_runs() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0


def env_file_names() -> list[str]:
    """The secret variables deploy/shopbot.env.example documents."""
    lines = (DEPLOY / "shopbot.env.example").read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def secrets_env(discord: FakeDiscord, stripe: FakeStripe) -> dict[str, str]:
    values = {
        "SHOPBOT_DISCORD__TOKEN": discord.token,
        "SHOPBOT_STRIPE__SECRET_KEY": stripe.secret_key,
        "SHOPBOT_STRIPE__WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    assert sorted(env_file_names()) == sorted(values)
    return values


def config_without_secrets(bot: BotProcess, db_path: str) -> str:
    """The harness's config for the fakes with the three secrets left to the environment."""
    kept = [
        line
        for line in bot.config_path.read_text().splitlines()
        if not line.startswith(("token =", "secret_key =", "webhook_secret ="))
        and not line.startswith("path =")
    ]
    text = "\n".join(kept).replace("[database]", f'[database]\npath = "{db_path}"')
    assert "fake" not in text.split("[stripe]")[1].split("[http]")[0]  # no key left in it
    return text


def install_like_the_dockerfile(df: Dockerfile, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv stands for the image's Python: the context that `COPY . /src`
    copies, then every RUN line that installs (as written, in WORKDIR /src) with the
    Dockerfile's ENV. Returns the venv's bin directory and that environment."""
    assert df.one("FROM").startswith("python:3.11-slim")
    assert ". /src" in df.all("COPY") and df.all("WORKDIR")[0] == "/src"
    context = docker_context(tmp_path / "src")
    assert not (context / ".venv").exists() and (context / "pyproject.toml").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, **df.env()}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    installs = [rest for rest in df.all("RUN") if rest.startswith("pip install")]
    assert installs == ["pip install ."], installs
    for command in installs:
        subprocess.run(["sh", "-c", command], cwd=context, env=env, check=True, timeout=600)
    return venv / "bin", env


async def answer(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


@pytest.mark.timeout(900)
async def test_docker_image_entrypoint_runs_as_written(
    tmp_path: Path, fake_discord: FakeDiscord, fake_stripe: FakeStripe
) -> None:
    """The Dockerfile's CMD, in an environment built by its own COPY/RUN/ENV lines, starts a
    bot that answers /healthz 200 to the HEALTHCHECK command and / with the shop's name, and
    exits 0 on SIGTERM; secrets come only through the env file's variable names. Where a
    container engine runs, the image itself is built and run too."""
    df = Dockerfile.read(REPO / "Dockerfile")
    cmd = json.loads(df.one("CMD"))
    assert cmd == ["shopbot", "run", "--config", "/config/config.toml"]
    assert df.all("USER") == ["shopbot"] and '"/data"' in df.one("VOLUME")
    assert df.one("EXPOSE") == "8080" and df.all("WORKDIR")[-1] == "/data"
    health = df.healthcheck()
    assert health[0] == "python" and "/healthz" in health[-1]

    guild = fake_discord.add_guild(name="Corner Shop", owner_id=ADMIN)
    fake_discord.add_member(guild.id, ADMIN, dispatch=False)
    bin_dir, env = await asyncio.to_thread(install_like_the_dockerfile, df, tmp_path)
    data = tmp_path / "data"  # the /data volume
    data.mkdir()
    bot = BotProcess(tmp_path, fake_discord, fake_stripe, [guild.id])
    config = tmp_path / "config" / "config.toml"  # the /config mount
    config.parent.mkdir()
    config.write_text(config_without_secrets(bot, str(data / "shop.db")))
    env.update(secrets_env(fake_discord, fake_stripe))
    env.pop("SHOPBOT_CONFIG", None)
    env["SHOPBOT_HTTP__PORT"] = str(bot.port)  # as `docker run -e` would move the port
    argv = [arg.replace("/config/config.toml", str(config)) for arg in cmd]
    argv[0] = str(bin_dir / argv[0])  # PATH lookup of the image's `shopbot`
    with bot.log_path.open("ab") as log:
        bot.proc = subprocess.Popen(argv, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        await bot.wait_healthy(timeout=60)
        probe = [str(bin_dir / health[0]), *health[1:]]
        healthy = await asyncio.to_thread(subprocess.run, probe, env=env, timeout=30)
        assert healthy.returncode == 0
        status, page = await answer(f"{bot.url}/")
        assert status == 200 and "Corner Shop" in page
        assert f"https://discord.com/channels/{guild.id}" in page
        assert (data / "shop.db").exists()
    finally:
        code = await bot.stop()
    assert code == 0, bot.log_text()[-3000:]
    assert "Traceback" not in bot.log_text()
    down = await asyncio.to_thread(subprocess.run, probe, env=env, capture_output=True)
    assert down.returncode != 0  # the same probe fails once the bot is gone

    if docker_engine_runs():
        await asyncio.to_thread(run_the_image, tmp_path, bot, config, env)


def run_the_image(tmp_path: Path, bot: BotProcess, config: Path, env: dict[str, str]) -> None:
    """docker build, docker run with the /config mount, the env file and a data volume on the
    host network (the fakes listen on 127.0.0.1), /healthz 200, docker stop → exit code 0."""
    tag, name = "shopbot:deploy-test", f"shopbot-deploy-test-{os.getpid()}"
    subprocess.run(["docker", "build", "-t", tag, str(REPO)], check=True, timeout=900)
    container_config = config.parent / "docker" / "config.toml"
    container_config.parent.mkdir()
    text = config.read_text().replace(str(tmp_path / "data" / "shop.db"), "/data/shop.db")
    container_config.write_text(text)
    env_file = tmp_path / "shopbot.env"
    env_file.write_text("".join(f"{key}={env[key]}\n" for key in env_file_names()))
    run = [
        "docker", "run", "-d", "--name", name, "--network", "host",
        "-v", f"{container_config.parent}:/config:ro", "-v", f"{name}:/data",
        "--env-file", str(env_file), "-e", f"SHOPBOT_HTTP__PORT={bot.port}", tag,
    ]  # fmt: skip
    subprocess.run(run, check=True, timeout=120)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, _ = asyncio.run(answer(f"{bot.url}/healthz"))
            except aiohttp.ClientError:
                status = 0
            if status == 200:
                break
            assert time.monotonic() < deadline, "container never answered /healthz 200"
            time.sleep(0.2)
        subprocess.run(["docker", "stop", "-t", "30", name], check=True, timeout=60)
        inspect = ["docker", "inspect", "-f", "{{.State.ExitCode}}", name]
        assert subprocess.run(inspect, capture_output=True, text=True).stdout.strip() == "0"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", name], capture_output=True)


# --- several processes: deploy/compose.scale.yaml --------------------------------------------

SCALE_COMPOSE = DEPLOY / "compose.scale.yaml"
#: deploy/.env as the header of compose.scale.yaml has the operator write it.
SCALE_DOTENV = {"SHOPBOT_DOMAIN": "shop.example.com", "SHOPBOT_PG_PASSWORD": "0123abcd"}


def compose_interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:?message}` and `${VAR:-default}` from deploy/.env."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in dotenv and (dotenv[name] or op != ":-"):
            return dotenv[name]
        assert op != ":?", f"compose would refuse to start: {arg}"
        return arg

    return re.sub(r"\$\{(\w+)(?:(:[?-])([^}]*))?\}", one, value)


def scale_services() -> dict[str, dict[str, object]]:
    services = yaml.safe_load(SCALE_COMPOSE.read_text())["services"]
    assert isinstance(services, dict)
    return services


def service_env(service: dict[str, object]) -> dict[str, str]:
    environment = service["environment"]
    assert isinstance(environment, dict)  # a mapping: YAML merge keys (<<) need one
    return {
        key: compose_interpolate(str(value), SCALE_DOTENV) for key, value in environment.items()
    }


def settings_key(variable: str) -> tuple[str, str]:
    """SHOPBOT_SECTION__KEY → (section, key), checked against the settings model: a
    misspelt variable would otherwise be ignored by compose and the bot alike."""
    from bot.config import Settings

    assert variable.startswith("SHOPBOT_"), variable
    section, sep, key = variable.removeprefix("SHOPBOT_").lower().partition("__")
    assert sep and "__" not in key, f"{variable}: expected SHOPBOT_<SECTION>__<KEY>"
    assert section in Settings.model_fields, f"{variable}: no [{section}] section"
    model = Settings.model_fields[section].annotation
    assert model is not None and key in model.model_fields, f"{variable}: no {section}.{key}"
    return section, key


def test_scale_compose_runs_each_shard_in_exactly_one_process_over_one_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every bot service of compose.scale.yaml loads (through the real settings model, from
    its SHOPBOT_* environment) to the same PostgreSQL URL on the compose's postgres service
    and the same shard count, and their shard ranges are disjoint and cover every shard —
    nothing in shopbot itself refuses overlapping ranges (docs/SCALING.md), so this file
    must be right. The bots start only after the one-shot migrate has succeeded, which
    waits for PostgreSQL's pg_isready, and Caddy balances over exactly these bots with
    /healthz checks."""
    from urllib.parse import urlsplit

    from bot.config import load_settings

    services = scale_services()
    bots = {name: s for name, s in services.items() if re.fullmatch(r"shopbot-\d+", name)}
    assert sorted(bots) == [f"shopbot-{i}" for i in range(4)]
    config = tmp_path / "config.toml"
    config.write_text(
        '[discord]\ntoken = "a-bot-token"\n'
        '[stripe]\nsecret_key = "sk_test_x"\nwebhook_secret = "whsec_x"\n'
        '[http]\npublic_url = "https://shop.example.com"\n'
    )
    owner: dict[int, str] = {}
    fleet: set[tuple[str, int]] = set()
    for name, service in bots.items():
        env = service_env(service)
        with monkeypatch.context() as patch:
            for variable, value in env.items():
                settings_key(variable)
                patch.setenv(variable, value)
            settings = load_settings(config)
        shards = settings.discord.shards
        assert settings.discord.sharded, name
        assert not shards.everything, f"{name} runs every shard: set its shard_ids"
        for shard in shards.ids:
            assert shard not in owner, f"shard {shard} in both {owner.get(shard)} and {name}"
            owner[shard] = name
        fleet.add((settings.database.url_value, shards.count))
        depends = service["depends_on"]
        assert depends == {"migrate": {"condition": "service_completed_successfully"}}, name
    ((url, count),) = fleet  # one database, one shard count for the whole fleet
    assert sorted(owner) == list(range(count)), "some shards run in no process"
    parts = urlsplit(url)
    assert parts.scheme == "postgresql" and parts.hostname in services
    assert parts.password == SCALE_DOTENV["SHOPBOT_PG_PASSWORD"]

    postgres = services[str(parts.hostname)]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])  # type: ignore[index]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])  # type: ignore[attr-defined]
    migrate = services["migrate"]
    assert migrate["command"][1] == "migrate"  # type: ignore[index]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert service_env(migrate)["SHOPBOT_DATABASE__URL"] == url

    caddyfile = (DEPLOY / "Caddyfile.scale").read_text()
    upstreams = re.search(r"^\s*reverse_proxy ([^{\n]+)\{", caddyfile, re.MULTILINE)
    assert upstreams is not None
    assert sorted(upstreams.group(1).split()) == sorted(f"{name}:8080" for name in bots)
    assert re.search(r"^\s*health_uri /healthz$", caddyfile, re.MULTILINE)
    caddy_mounts = services["caddy"]["volumes"]
    assert "./Caddyfile.scale:/etc/caddy/Caddyfile:ro" in caddy_mounts  # type: ignore[operator]


def test_scale_compose_migrate_service_migrates_postgresql_as_written(
    tmp_path: Path, pg_url: str
) -> None:
    """The migrate service's command, with its environment (the URL pointed at this test's
    PostgreSQL instead of the compose network's), exits 0 and reports the schema version."""
    from bot.store.db import _migrations

    migrate = scale_services()["migrate"]
    command = migrate["command"]
    assert isinstance(command, list) and command[0] == "shopbot"
    env = {**os.environ, **service_env(migrate), "SHOPBOT_DATABASE__URL": pg_url}
    config = tmp_path / "config.toml"
    config.write_text('[http]\npublic_url = "https://shop.example.com"\n')  # no [database]
    argv = [
        str(VENV_SHOPBOT),
        *(str(config) if a == "/config/config.toml" else a for a in command[1:]),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    latest = _migrations("bot.store.migrations_pg")[-1][0]
    assert result.stdout == f"database {pg_url} is at schema version {latest}\n"
