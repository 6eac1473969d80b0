# rrlab in a container, for replay-only CI. Two images from one file:
#
#   docker build -t rrlab .                   # the default: the generic tool image
#   docker run --rm --privileged -v "$PWD:/work" -w /work rrlab replay --all cassettes/
#
# The generic image holds rrlab, installed from this repository's wheel with the locked
# dependencies, and nothing of this repository else (no worker, no tests); its entry point is
# `rrlab`, so any command runs: `... rrlab inspect cassettes/NAME`, `... rrlab verify ...`. It
# replays the cassettes of the repository mounted at /work, offline: no broker runs in it.
# A cassette's command runs inside the container, so a project whose commands need more than
# Python and rrlab's own dependencies extends it:  FROM rrlab  +  RUN pip install -r ...
# --privileged lets `rrlab replay` make a network namespace with only loopback; without it the
# replay falls back to its Python guard and the report says so.
#
#   docker build --target lab-ci -t rrlab-lab-ci .   # this repository's own CI (make ci): its
#   docker run --rm --privileged rrlab-lab-ci        # cassettes' commands need Java, Maven,
#                                                    # amqp-tools and Mosquitto's clients

# --- the wheel, built from the sdist (nothing stale from a build/ directory can leak in) ---
FROM python:3.11-slim AS wheel
ENV UV_PYTHON_DOWNLOADS=never \
    UV_NO_CONFIG=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir uv \
 && uv build --out-dir /dist \
 && cp requirements.lock /dist/

# --- this repository's own CI job: every committed cassette replayed offline and strict ----
FROM python:3.11-slim AS lab-ci

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

# --- the generic tool image (the default target) -----------------------------------------
FROM python:3.11-slim AS rrlab

ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CONFIG=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# util-linux: `unshare`, the replay sandbox's network namespace
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends util-linux \
 && rm -rf /var/lib/apt/lists/*

# the locked dependencies (hashes required), then rrlab itself from the wheel, without
# resolving anything again
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-cache-dir uv \
 && uv pip install --system --require-hashes -r /tmp/dist/requirements.lock \
 && uv pip install --system --no-deps /tmp/dist/*.whl \
 && rm -rf /tmp/dist \
 && rrlab --version

WORKDIR /work
ENTRYPOINT ["rrlab"]
CMD ["--help"]
