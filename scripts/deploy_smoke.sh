#!/usr/bin/env bash
# The dev overlay, played for real: build the images (scripts/images.sh: reuses layers and
# the base), render k8s/overlays/podman (= dev + what podman lacks: Services, published
# ports), `podman kube play` it on its own network with a small catalog of real photos on
# the catalog volume, wait until the web tier is ready, send a real search with a real
# photo through the published port and require items back, ask for the look that completes
# the first item (the outfits model read from /models), check the gRPC API's health
# and send it the same search through its published port, then tear everything down
# (also on failure).
# Times go to var/reports/deploy_smoke.json.
#
#   make deploy-smoke          (needs `make install`: kubectl and the checks' Python)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CONTAINERS_CONF="$ROOT/docker/containers.conf"
PY="$ROOT/.venv/bin/python"
KUBECTL="$ROOT/.venv/bin/kubectl"
DATA="${EYEPIC_DATA_DIR:-../shared/data}"
WEB_PORT=18000   # hostPorts in k8s/overlays/podman/podman.yaml
GRPC_PORT=15051
NETWORK=eyepic-smoke
WORK=var/deploy-smoke
REPORT=var/reports/deploy_smoke.json
PER_CLASS=${EYEPIC_SMOKE_PER_CLASS:-3}   # catalog photos per clothing-small class
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
start=$SECONDS
mkdir -p "$WORK" var/reports

# 1. images (layers reused: a second run only checks them)
scripts/images.sh api model-server indexer
images_s=$((SECONDS - start))

# 2. manifests: model server first (the API pods' index init containers call it), then the API
"$KUBECTL" kustomize k8s/overlays/podman > "$WORK/rendered.yaml"
"$PY" - "$WORK" <<'EOF'
"""Split the rendered overlay into what podman plays: ConfigMaps (inputs) + Deployments.
Services, NetworkPolicies, PVCs and the Namespace have no podman meaning (the catalog
volume is made by this script under the claim's name)."""
import sys
from pathlib import Path

import yaml

work = Path(sys.argv[1])
docs = [d for d in yaml.safe_load_all((work / "rendered.yaml").read_text()) if d]
config = [d for d in docs if d["kind"] == "ConfigMap"]
deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
model = [deployments.pop("tf-serving")]
(work / "model-server.yaml").write_text(yaml.safe_dump_all(config + model))
(work / "api.yaml").write_text(yaml.safe_dump_all(config + list(deployments.values())))
print("playing:", "tf-serving,", ", ".join(deployments))
EOF

teardown() {
  podman kube down "$WORK/api.yaml" >/dev/null 2>&1 || true
  podman kube down "$WORK/model-server.yaml" >/dev/null 2>&1 || true
  podman volume rm -f eyepic-catalog eyepic-models eyepic-index >/dev/null 2>&1 || true
  podman network rm -f "$NETWORK" >/dev/null 2>&1 || true
}
fail() {
  echo "deploy-smoke FAILED: $*" >&2
  for c in $(podman ps -a --format '{{.Names}}' | grep -E '^(tf-serving|eyepic-web|eyepic-grpc-api)-pod' || true); do
    echo "--- logs of $c (last 30 lines)" >&2; podman logs --tail 30 "$c" >&2 || true
  done
  exit 1
}
trap teardown EXIT
trap 'echo "deploy-smoke FAILED at line $LINENO" >&2' ERR
teardown

# 3. the catalog volume: a few real train photos per class of clothing-small
rm -rf "$WORK/catalog" && mkdir -p "$WORK/catalog/photos"
"$PY" - "$DATA/clothing-small/train" "$WORK/catalog" "$PER_CLASS" <<'EOF'
import json
import shutil
import sys
from pathlib import Path

train, out, per_class = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
lines = []
for folder in sorted(p for p in train.iterdir() if p.is_dir()):
    for photo in sorted(folder.glob("*.jpg"))[:per_class]:
        shutil.copyfile(photo, out / "photos" / photo.name)
        lines.append({"id": f"{folder.name}-{photo.stem[:8]}", "image": f"photos/{photo.name}",
                      "title": f"{folder.name} {photo.stem[:8]}", "price": 10.0, "shop": "smoke"})
(out / "catalog.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
print(f"catalog: {len(lines)} photos")
EOF
chmod -R a+rX "$WORK/catalog"
for volume in eyepic-catalog eyepic-models eyepic-index; do podman volume create "$volume" >/dev/null; done
podman run --rm --network none -v "$ROOT/$WORK/catalog:/src:ro" -v eyepic-catalog:/catalog \
  -v eyepic-index:/index localhost/eyepic-base:bookworm \
  /bin/sh -c 'cp -R /src/. /catalog/ && chown 10001:10001 /index'
# what dev's `models` init container does (k8s/overlays/podman says why not as one)
podman run --rm --network none -v eyepic-models:/mnt/models "localhost/eyepic-model-server:$VERSION" \
  cp -R /models/. /mnt/models/
podman network create "$NETWORK" >/dev/null

# 4. play: the model server, then (once it answers) the API tiers
play_start=$SECONDS
podman kube play --network "$NETWORK" "$WORK/model-server.yaml" >/dev/null
for _ in $(seq 120); do
  podman exec tf-serving-pod-0-tf-serving python -c \
    "import socket; socket.create_connection(('127.0.0.1', 8500), 2)" 2>/dev/null && break
  sleep 2
done || true
podman exec tf-serving-pod-0-tf-serving python -c \
  "import socket; socket.create_connection(('127.0.0.1', 8500), 2)" 2>/dev/null || fail "model server never listened"
model_s=$((SECONDS - play_start))

# what dev's `index` init container does: the indexer image, the rendered settings
"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import yaml

work = Path(sys.argv[1])
[config] = [d for d in yaml.safe_load_all((work / "rendered.yaml").read_text())
            if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "eyepic-config"]
(work / "eyepic.env").write_text("".join(f"{k}={v}\n" for k, v in config["data"].items()))
EOF
index_start=$SECONDS
podman run --rm --network "$NETWORK" --user 10001:10001 --read-only --env-file "$WORK/eyepic.env" \
  -e HOME=/tmp --tmpfs /tmp -v eyepic-catalog:/catalog:ro -v eyepic-models:/models:ro \
  -v eyepic-index:/var/lib/eyepic/index "localhost/eyepic-indexer:$VERSION" \
  eyepic index /catalog/catalog.jsonl > "$WORK/index.log" 2>&1 || { tail -20 "$WORK/index.log"; fail "indexing"; }
grep -v "^I0000\|^W0000\|^E0000\|cuda\|oneDNN\|AVX\|absl" "$WORK/index.log" | tail -3
index_s=$((SECONDS - index_start))
podman kube play --network "$NETWORK" "$WORK/api.yaml" >/dev/null || fail "podman kube play of the API tiers"

# 5. ready, then a real search through the published port, and gRPC health
ready=""
for _ in $(seq 150); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$WEB_PORT/readyz" 2>/dev/null; then ready=1; break; fi
  sleep 2
done
[ -n "$ready" ] || fail "web tier not ready on :$WEB_PORT"
ready_s=$((SECONDS - play_start))

photo=$(find "$DATA/clothing-small/validation" -name '*.jpg' | sort | sed -n 1p)  # sed reads it all: no SIGPIPE
curl -fsS -F "image=@$photo" "http://127.0.0.1:$WEB_PORT/api/v1/search?k=5" > "$WORK/search.json" \
  || fail "search request"
"$PY" - "$WORK/search.json" "$GRPC_PORT" "$photo" "$WEB_PORT" <<'EOF' || fail "search, look, gRPC health or gRPC search answer"
import json
import sys
import time
import urllib.parse
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

answer = json.load(open(sys.argv[1]))
items = [item for garment in answer["garments"] for item in garment["items"]]
assert items, f"no items in {answer}"
print(f"search: {len(answer['garments'])} garment(s), {len(items)} item(s), model {answer['model_version']}, "
      f"first: {items[0]['id']} {items[0].get('title')!r}")
# complete the look for that item: 200 means the API pod read the outfits model from /models (503 if not)
url = f"http://127.0.0.1:{sys.argv[4]}/api/v1/items/{urllib.parse.quote(items[0]['id'])}/complete-the-look"
with urllib.request.urlopen(url, timeout=60) as reply:  # noqa: S310 (a fixed local URL)
    look = json.load(reply)
print(f"complete the look: {len(look.get('groups', []))} group(s) for {items[0]['id']}")
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}") as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(60):  # the gRPC pod fills its own index: it may turn SERVING a little later
        status = stub.Check(health_pb2.HealthCheckRequest(service="eyepic.v1.Recommender"), timeout=5).status
        if status == health_pb2.HealthCheckResponse.SERVING:
            break
        time.sleep(2)
    assert status == health_pb2.HealthCheckResponse.SERVING, status
    print("grpc health: eyepic.v1.Recommender SERVING")
    from eyepic.v1 import recommender_pb2, recommender_pb2_grpc

    reply = recommender_pb2_grpc.RecommenderStub(channel).Search(
        recommender_pb2.SearchRequest(image=open(sys.argv[3], "rb").read(), k=5), timeout=60)
    grpc_items = [item for garment in reply.garments for item in garment.items]
    assert grpc_items, reply
    print(f"grpc search: {len(reply.garments)} garment(s), {len(grpc_items)} item(s)")
EOF
total_s=$((SECONDS - start))
printf '{"images_seconds": %s, "model_server_listening_seconds": %s, "index_seconds": %s, "web_ready_seconds": %s, "total_seconds": %s}\n' \
  "$images_s" "$model_s" "$index_s" "$ready_s" "$total_s" > "$REPORT"
echo "deploy-smoke passed in $total_s s (images $images_s s, web ready $ready_s s after play); report: $REPORT"
