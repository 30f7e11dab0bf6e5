# dynamopy node image.
#
#   docker build -t REGISTRY/dynamopy:0.1.0 .
#   docker run --rm -p 8080:8080 -e DYNAMOPY_CLUSTER_SECRET=... REGISTRY/dynamopy:0.1.0
#
# Two stages: the first builds a virtual environment (every dependency ships a wheel for
# CPython 3.11 on manylinux, plyvel with LevelDB inside, so no compiler is needed); the final
# image holds only that environment on a slim Python base and runs as an unprivileged user.
# No HEALTHCHECK on purpose: on Kubernetes the kubelet probes /health and /ready (see k8s/).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY . .
# Install only from wheels: a source build would need a toolchain the image does not carry.
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --no-binary=dynamopy .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="dynamopy" \
      org.opencontainers.image.description="A Dynamo-style leaderless quorum key-value store"
RUN groupadd --system --gid 10001 dynamopy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dynamopy --no-create-home \
            --shell /usr/sbin/nologin dynamopy \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/dynamopy
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DYNAMOPY_HOST=0.0.0.0 \
    DYNAMOPY_PORT=8080 \
    DYNAMOPY_PEER_PORT=7000 \
    DYNAMOPY_DATA_DIR=/var/lib/dynamopy
WORKDIR /var/lib/dynamopy
USER 10001:10001
EXPOSE 8080 7000
# The StatefulSet in k8s/ runs the same command (a test checks they agree); every setting
# comes from DYNAMOPY_* environment variables or flags appended to it.
ENTRYPOINT ["dynamopy", "serve"]
