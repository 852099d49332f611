# syntax=docker/dockerfile:1
# DermaLink API and worker image: `dermalink serve` (default) or `dermalink worker` / `dermalink db upgrade`.
# Build from the repository root: docker build -t dermalink:VERSION .
# Serving needs no TensorFlow (that is the `train` extra) and no build tools: both stay in the build stage.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/dermalink
COPY pyproject.toml constraints.txt README.md ./
COPY backend ./backend
# The base install serves; `triton` adds the Triton client (DERMALINK_INFERENCE=triton). Pinned by constraints.txt.
RUN /opt/dermalink/bin/pip install --no-compile -c constraints.txt ".[triton]" \
    && /opt/dermalink/bin/python -c "import backend.main" \
    && ! /opt/dermalink/bin/python -c "import tensorflow" 2>/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dermalink" \
      org.opencontainers.image.description="DermaLink API (dermalink serve) and analysis worker (dermalink worker)"
RUN groupadd --system --gid 10001 dermalink \
    && useradd --system --uid 10001 --gid dermalink --home-dir /app --no-create-home --shell /usr/sbin/nologin dermalink
COPY --from=build /opt/dermalink /opt/dermalink
# The exported repository: labels and triage thresholds (the API) and model.onnx (DERMALINK_INFERENCE=onnx).
COPY model_repository /app/model_repository
ENV PATH=/opt/dermalink/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DERMALINK_ENVIRONMENT=production \
    DERMALINK_AUTO_MIGRATE=false \
    DERMALINK_CREATE_DEMO_USERS=false \
    DERMALINK_MODEL_REPOSITORY=/app/model_repository \
    DERMALINK_DATA_DIR=/tmp/dermalink
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# /healthz: the process answers. Load balancers and Kubernetes use /readyz (database and model) for traffic.
# A worker container (no HTTP) overrides this healthcheck (see infra/compose.yaml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["dermalink", "serve", "--host", "0.0.0.0", "--port", "8000"]
