# The CI job for users of messaging-rr-lab: replay every committed cassette offline and strict
# (`make ci`). No broker runs in this image; the cassettes are the brokers.
#   docker build -t rrlab-ci .
#   docker run --rm --privileged -v "$PWD/out:/src/out" rrlab-ci
# --privileged lets `rrlab replay` make a network namespace with only loopback; without it the
# replay falls back to its Python guard and the report says so.
FROM python:3.11-slim

ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CONFIG=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# System packages: make, the replay sandbox (util-linux unshare, iproute2), the client families
# the client cassettes replay (Java client: JDK + Maven for its jars; amqp-tools; Mosquitto's
# clients), and what tools/ensure-system-packages checks for, so `make ci` installs nothing.
COPY tools/ensure-system-packages tools/ensure-system-packages
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends make git util-linux iproute2 \
      openjdk-17-jdk-headless maven \
 && tools/ensure-system-packages \
 && rm -rf /var/lib/apt/lists/*

# Python dependencies from the lock file, hashes required.
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir uv \
 && uv venv --python python3 .venv \
 && VIRTUAL_ENV=.venv uv pip sync --require-hashes requirements.lock

COPY . .
RUN make venv

CMD ["make", "ci"]
