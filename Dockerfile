# syntax=docker/dockerfile:1
# stepup-idp: build a virtualenv with only the runtime dependencies, then copy it into a slim
# image that runs `idp serve` as an unprivileged user. Configuration comes only from the
# environment (IDP_*) and an optional mounted file named by IDP_CONFIG; see README, Deploying.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the project and its runtime dependencies into /opt/venv ---------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY idp ./idp
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-compile --upgrade "pip>=24" \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall --yes pip \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# -- runtime: the virtualenv, a non-root user, nothing else ------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="stepup-idp" \
      org.opencontainers.image.description="OpenID Connect provider with exact, standard multi-factor and step-up authentication" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 idp \
 && useradd --system --uid 10001 --gid idp --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin idp
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IDP_ENVIRONMENT=production \
    IDP_SERVER__HOST=0.0.0.0 \
    IDP_SERVER__PORT=8080 \
    IDP_INSTANCE_PATH=/tmp/idp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('IDP_SERVER__PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["idp", "serve"]
