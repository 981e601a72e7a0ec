# syntax=docker/dockerfile:1
# The linewatch image: the inspection service, its job workers and every engine, on the CPU.
#
#   docker build -t linewatch:0.1.0 .
#   docker run -p 8000:8000 -v linewatch-data:/data linewatch:0.1.0              # the service on embedded defaults
#   docker run -i -v linewatch-data:/data linewatch:0.1.0 users create admin --role admin --password-stdin
#
# deploy/compose.yaml runs it on one host with PostgreSQL, Redis and Mosquitto; deploy/kubernetes/ on a cluster
# (docs/deploy.md). The same image runs `linewatch worker`, `linewatch batch` and every other command.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch's CPU build first, at pyproject.toml's pins: PyPI's Linux wheel of torch is a CUDA build of several GB that
# an image for CPUs would carry for nothing. A GPU worker image: build with --build-arg TORCH_INDEX=<a CUDA index>.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1

# the extras a service needs (all but Ray's batch scoring, which runs from a Ray cluster's own image)
ARG EXTRAS=vision,service,search,sensors,maintenance,twin,scheduling,registry
COPY pyproject.toml README.md /build/
COPY src /build/src
RUN pip install "/build[${EXTRAS}]" && rm -rf /build

# an unprivileged user; /data is the data dir (database on embedded defaults, images, models): mount a volume there
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin linewatch \
    && mkdir /data && chown linewatch:linewatch /data
USER 10001
WORKDIR /data
ENV LINEWATCH_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["linewatch"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
