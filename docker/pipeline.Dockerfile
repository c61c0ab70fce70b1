# syntax=docker/dockerfile:1
# The pipeline image: the whole pinned stack (TensorFlow, DVC, MLflow, Airflow 3.3.2), git, and
# movierec installed in editable mode from /opt/movierec/project. It runs `airflow standalone`
# with the project's DAG by default; docker-compose.yml also runs the MLflow server from it.
#
#   docker build -f docker/pipeline.Dockerfile -t movierec-pipeline .
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD:/opt/movierec/project" movierec-pipeline
#
# DVC needs the git checkout, so the project is meant to be mounted at /opt/movierec/project (the
# copy baked in at build time has no .git). The editable install resolves `movierec` to that
# folder's src/, so the DAG runs the mounted code, the same code dvc.lock records.
# Run as your own uid (`--user "$(id -u):0"`) to write into the checkout with your ownership:
# every folder the image writes to is group 0 and group-writable for that.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---- build: identical to the service image's build stage up to the last RUN ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.txt constraints.txt ./
RUN pip install --upgrade pip==26.3 \
    && pip install -r requirements.txt -c constraints.txt
WORKDIR /opt/movierec/project
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps -e . && pip check

# ---- runtime -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS pipeline
# git: DVC works on a git checkout. DL3008 (pin apt versions) is ignored: Debian's archive keeps
# only a release's current version, so a pinned one breaks the build as soon as it moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory /opt/movierec/project \
    && useradd --system --uid 10001 --gid 0 --create-home --home-dir /home/movierec \
       --shell /usr/sbin/nologin movierec \
    && install -d -o 10001 -g 0 -m 2775 /opt/airflow /var/lib/mlflow /opt/movierec/movierec-dvc-remote \
    && chmod 2775 /home/movierec
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=10001:0 /opt/movierec/project /opt/movierec/project
COPY --chown=10001:0 . /opt/movierec/project
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/movierec \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF_USE_LEGACY_KERAS=1 \
    MOVIEREC_PROJECT_DIR=/opt/movierec/project \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/movierec/project/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False \
    AIRFLOW__API__PORT=8080 \
    AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:8080/execution/
WORKDIR /opt/movierec/project
USER 10001:0
EXPOSE 8080 5000
# Airflow's API server answers its health endpoint once the metadata database is migrated.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/v2/monitor/health', timeout=8).status != 200)"]
CMD ["airflow", "standalone"]
