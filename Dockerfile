# syntax=docker/dockerfile:1
# The controller's image (manifests/deployment.yaml runs it):
#   docker build -t model-rollout:0.1.0 .
# The first stage builds the wheel; the final one installs it on a clean slim base, without
# build tools, and runs as a non-root user.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rollout/ rollout/
COPY policies/ policies/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Bind-mounted rather than copied: the wheel stays out of the image's layers.
RUN --mount=type=bind,from=build,source=/src/dist,target=/dist \
    pip install --no-cache-dir /dist/*.whl
# A numeric UID, so the kubelet can check runAsNonRoot (manifests/deployment.yaml uses it).
RUN groupadd --system --gid 10001 rollout \
    && useradd --system --uid 10001 --gid rollout --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin rollout
USER 10001:10001
# /healthz and /readyz; metrics.
EXPOSE 8080 9090
ENTRYPOINT ["rollout", "controller"]
