#!/usr/bin/env bash
# Build Eyepic's images here, with no image registry: install podman/buildah/mmdebstrap/runc
# from Debian if missing, bootstrap a Debian bookworm base (python3 3.11) with mmdebstrap,
# then build docker/Dockerfile's targets FROM it (api, model-server, indexer). Layers are
# reused between targets and runs (the Python layer is built once); pip's cache is the
# build's cache mount. Build times and image sizes go to var/reports/images.json.
#
#   scripts/images.sh [TARGET...]     # default: api model-server indexer
#   EYEPIC_REBUILD_BASE=1 scripts/images.sh   # bootstrap the base again
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CONTAINERS_CONF="$ROOT/docker/containers.conf"  # runc + explicit ulimits (see the file)

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BASE_IMAGE=localhost/eyepic-base:bookworm
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(api model-server indexer)
REPORT=var/reports/images.json
mkdir -p var/reports var/build

ensure_tools() {
  local missing=()
  for tool in podman buildah mmdebstrap runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq podman buildah mmdebstrap runc uidmap >/dev/null
  fi
}

# A base image from Debian packages: what python:3.11-slim gives users (python3, venv, apt,
# useradd), bootstrapped here because no image registry is reachable.
ensure_base() {
  if [ -z "${EYEPIC_REBUILD_BASE:-}" ] && podman image exists "$BASE_IMAGE"; then return; fi
  local start=$SECONDS
  mmdebstrap --quiet --variant=apt --include=python3,python3-venv,passwd,ca-certificates \
    bookworm var/build/base.tar http://deb.debian.org/debian
  podman import --quiet --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' var/build/base.tar "$BASE_IMAGE" >/dev/null
  rm -f var/build/base.tar
  echo "base: $BASE_IMAGE in $((SECONDS - start)) s"
  BASE_SECONDS=$((SECONDS - start))
}

build() {
  local target=$1 start=$SECONDS extra=()
  # this machine's pip settings and CA bundle (its HTTPS goes through a proxy with its own
  # CA), as build volumes: they reach pip in the build and never a layer
  [ -f /etc/pip.conf ] && extra+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
  [ -f /etc/ssl/certs/ca-certificates.crt ] && \
    extra+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  # warm-up photos for the exported models, when the data is beside the repository
  if [ "$target" = model-server ] && [ -d ../shared/data ]; then
    extra+=(--volume "$(realpath ../shared/data):/data:ro")
  fi
  podman build --quiet --layers --format docker -f docker/Dockerfile --target "$target" \
    --build-arg BASE="$BASE_IMAGE" "${extra[@]}" \
    -t "localhost/eyepic-$target:$VERSION" . >/dev/null
  local seconds=$((SECONDS - start))
  local bytes
  bytes=$(podman image inspect --format '{{.Size}}' "localhost/eyepic-$target:$VERSION")
  echo "$target: localhost/eyepic-$target:$VERSION, $((bytes / 1000000)) MB, built in $seconds s"
  RESULTS+=("\"$target\": {\"image\": \"localhost/eyepic-$target:$VERSION\", \"bytes\": $bytes, \"build_seconds\": $seconds}")
}

ensure_tools
BASE_SECONDS=0
ensure_base
RESULTS=()
for target in "${TARGETS[@]}"; do build "$target"; done
base_bytes=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
{
  printf '{"base": {"image": "%s", "bytes": %s, "build_seconds": %s},\n "targets": {' \
    "$BASE_IMAGE" "$base_bytes" "$BASE_SECONDS"
  (IFS=,; printf '%s' "${RESULTS[*]}")
  printf '}}\n'
} > "$REPORT"
echo "report: $REPORT"
