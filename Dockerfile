# syntax=docker/dockerfile:1
# One image for the four services (signalement, orientation, notification, reporting) and the
# topics job. PARCOURS_SERVICE_NAME picks the service at run time:
#
#   docker build -t parcours:local .
#   docker run --rm -e PARCOURS_SERVICE_NAME=signalement -e PARCOURS_HTTP_PORT=8001 \
#     -e PARCOURS_KAFKA_BOOTSTRAP_SERVERS=... -e PARCOURS_MONGO_URI=... \
#     -e PARCOURS_PSEUDONYM_KEY=... parcours:local
#
# docker-compose.yml runs the whole system with it; tests/unit/test_compose.py checks both.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

# The runtime dependencies of pyproject.toml (no dev extras) in their own layer, rebuilt
# only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

COPY shared ./shared
COPY services ./services
COPY deploy ./deploy

# The project itself, editable on purpose: the code reads files of the repository next to it
# (shared/topics.py opens deploy/topics.yaml by a path relative to itself), and a wheel built
# from this pyproject.toml leaves topics.yaml out (no package-data for it). So /app is the code
# that runs, for `python -m uvicorn` and the `parcours` command alike. The build fails here if
# the topic declaration cannot be read.
RUN pip install --no-deps -e . \
 && python -c "from shared.topics import load_topics; assert load_topics(), 'no topic declared'" \
 && python -m compileall -q /app/shared /app/services /app/deploy

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PARCOURS_HTTP_HOST=0.0.0.0 \
    PARCOURS_HTTP_PORT=8000 \
    PARCOURS_DATA_DIR=/var/lib/parcours

# tzdata: the code needs Europe/Paris (zoneinfo), which a slim image may lack. Then the
# service user and the one folder it writes, PARCOURS_DATA_DIR (letters, print batches,
# artifacts; the default data_dir is relative to /app, which it cannot write): mount a volume.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 parcours \
 && useradd --system --uid 10001 --gid parcours --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin parcours \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/parcours

# Same base image as the build stage, so the venv's interpreter links stay valid. Owned by
# root, read-only for the service user.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

# Fail the build rather than the start: each service's composition root must import here
# (every third-party import declared in pyproject.toml, time zones available).
RUN python -c "import importlib, pathlib; [importlib.import_module(f'services.{p.parent.name}.app') for p in sorted(pathlib.Path('services').glob('*/app.py'))]"

USER 10001:10001
EXPOSE 8000

# Ready = broker and database answer. Straight to the port: no HTTP(S)_PROXY for this probe.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/health/ready' % os.environ['PARCOURS_HTTP_PORT'], timeout=4)"]

# `exec` makes uvicorn PID 1, so `docker stop` (SIGTERM) starts its graceful shutdown.
CMD ["sh", "-c", "exec python -m uvicorn \"services.${PARCOURS_SERVICE_NAME:?set PARCOURS_SERVICE_NAME to signalement, orientation, notification or reporting}.app:create_app\" --factory --host \"$PARCOURS_HTTP_HOST\" --port \"$PARCOURS_HTTP_PORT\" --no-access-log --timeout-graceful-shutdown 30"]
