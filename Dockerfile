# shopbot in a container (docs/DEPLOY.md, "Docker"). Build: docker build -t shopbot .
# Run:  docker run -d --name shopbot -p 8080:8080 -v shopbot-data:/data \
#         -v /etc/shopbot:/config:ro --env-file /etc/shopbot/shopbot.env shopbot
# The config at /config/config.toml sets database.path = "/data/shop.db" and http.port = 8080.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Installed exactly as the README installs it (pip install .), from a clean copy of the repo.
WORKDIR /src
COPY . /src
RUN pip install .

RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin shopbot \
    && mkdir -p /data /config \
    && chown shopbot:shopbot /data
VOLUME ["/data"]
WORKDIR /data
USER shopbot

EXPOSE 8080
# 200 only when the process, its loops, the database and the gateway are up (SPEC §5).
# Slim images have no curl; SHOPBOT_HTTP__PORT, when set, moves the port for both.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SHOPBOT_HTTP__PORT', '8080') + '/healthz', timeout=4)"]
CMD ["shopbot", "run", "--config", "/config/config.toml"]
