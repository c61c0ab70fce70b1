# syntax=docker/dockerfile:1
# The movierec API: `movierec serve` on port 8000 with two uvicorn workers, as a non-root user.
#
#   docker build -t movierec-api .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/checkpoints:/opt/movierec/bundle:ro" \
#       -e MOVIEREC_API_KEYS='my-key:read+write' movierec-api
#
# The bundle is mounted at /opt/movierec/bundle (MOVIEREC_BUNDLE_DIR) by default. To bake it into
# the image instead, pass BUNDLE=baked and name the folder to copy as the `bundle` build context:
#
#   docker buildx build --build-arg BUNDLE=baked --build-context bundle=checkpoints -t movierec-api:baked .
#
# The service's SQLite database (request log, feedback) and downloaded registry bundles live in
# the volume /var/lib/movierec. docs/deployment.md has the details.

ARG PYTHON_IMAGE=python:3.11-slim-trixie
ARG BUNDLE=mounted

# ---- build: the pinned stack in a virtual environment, then movierec itself -------------------
# (the same steps as `make install`; identical in docker/pipeline.Dockerfile up to the last RUN,
# so the two images share the cached layers of the stack)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.txt constraints.txt ./
RUN pip install --upgrade pip==26.3 \
    && pip install -r requirements.txt -c constraints.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && pip check

# ---- runtime: the environment and a non-root user, nothing else ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 movierec \
    && useradd --system --uid 10001 --gid movierec --create-home --home-dir /home/movierec \
       --shell /usr/sbin/nologin movierec \
    && install -d -o movierec -g movierec /var/lib/movierec \
    && install -d /opt/movierec/bundle
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MOVIEREC_BUNDLE_DIR=/opt/movierec/bundle \
    MOVIEREC_DATABASE_PATH=/var/lib/movierec/movierec.sqlite \
    MOVIEREC_MODEL_CACHE_DIR=/var/lib/movierec/models
# `movierec serve` reads MOVIEREC_* only (no params.yaml): the working folder stays empty
WORKDIR /opt/movierec
VOLUME ["/var/lib/movierec"]
USER 10001:10001
EXPOSE 8000
# Healthy once /ready answers 200 (a bundle is loaded and the database takes writes); the first
# start imports TensorFlow and loads the bundle, hence the long start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
ENTRYPOINT ["movierec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]

# ---- the bundle: mounted at run time (default) or copied in from the `bundle` build context ---
# `bundle` is an empty stage unless `--build-context bundle=DIR` replaces it. The copy stays owned
# by root: the service reads its bundle and never writes to it.
FROM scratch AS bundle

FROM runtime AS bundle-mounted

FROM runtime AS bundle-baked
COPY --from=bundle / /opt/movierec/bundle/

# DL3006 (tag the image) reads bundle-${BUNDLE} as an image name; it is one of the two stages above.
# hadolint ignore=DL3006
FROM bundle-${BUNDLE} AS api
