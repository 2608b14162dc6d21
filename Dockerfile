# syntax=docker/dockerfile:1
# The operator's image: the wheel built from this repository and its dependencies, nothing else
# (no sandbox, no tests, no examples). Build: docker build -t <registry>/ovh-s3-operator:0.1.0 .
#
# The base image is pinned to an exact Python and Debian release. To pin it by content as well, append
# its digest to both FROM lines: docker buildx imagetools inspect python:3.11.14-slim-trixie

FROM python:3.11.14-slim-trixie AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crds ./crds
COPY operator ./operator
# The wheel is built in pip's isolated build environment (hatchling stays in this stage), then
# installed with its dependencies into a virtual environment that the final stage copies as it is.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install /wheels/ovh_s3_operator-*.whl \
    && /opt/venv/bin/pip uninstall --yes pip

FROM python:3.11.14-slim-trixie
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 operator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin operator
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# 8080: liveness (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
ENTRYPOINT ["ovh-s3-operator"]
CMD ["run", "--liveness=http://0.0.0.0:8080/healthz"]
