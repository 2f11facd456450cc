"""The Kubernetes manifests under k8s/, checked against the code they deploy.

Nothing can be applied here (no cluster, no Docker engine), so the manifests are
made correct by construction and held to it: every file parses and is listed in
the kustomization; every ``EYEPIC_*`` variable is a Settings field and the values
load; container ports agree with the settings, the Services and the clients'
addresses; probes hit routes the Flask app really has; command lines parse with
the ``eyepic`` CLI; TF Serving's flags name the files in serving/ and mount what
models.config expects. With kubectl present, ``kubectl kustomize`` must build it.
One module (about 450 lines) because the checks cross-reference the same parsed
manifests.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from eyepic.settings import Settings

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s" / "base"
KUSTOMIZATION = K8S / "kustomization.yaml"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)
SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}
TF_SERVING_CONFIG_MAP = "tf-serving-config"  # created from serving/ by kubectl (k8s/README.md)
CRAWL_PROFILE_CONFIG_MAP = "eyepic-crawl-profile"  # created from crawler/profiles/ by kubectl (k8s/README.md)


# --- loading -----------------------------------------------------------------
def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in _docs(path)]


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def _workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in WORKLOAD_KINDS}


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_template(obj)["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _config_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {name: cm.get("data", {}) for name, cm in _by_kind(objects, "ConfigMap").items()}


def _environment(container: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> dict[str, str]:
    """What the container's process sees: envFrom ConfigMaps, then env (which wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:  # a secretRef's keys are checked on the rendered overlays
            env.update(config_maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
    return env


def _eyepic_containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, c) for name, obj in _workloads(objects).items() for c in _containers(obj)
            if c.get("command", [None])[0] == "eyepic"]


def _cli_args(container: dict[str, Any]):
    from app.cli import build_parser

    return build_parser().parse_args(container["command"][1:] + container.get("args", []))


def _container_port(container: dict[str, Any], name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"{container['name']} has no port named {name!r}: {ports}"
    return ports[name]


def _mounts(obj: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[dict[str, Any], bool]]:
    """mountPath -> (the pod volume, mounted read-only)."""
    volumes = {v["name"]: v for v in _pod_template(obj)["spec"].get("volumes", [])}
    return {m["mountPath"]: (volumes[m["name"]], bool(m.get("readOnly"))) for m in container.get("volumeMounts", [])}


def _selected(objects: list[dict[str, Any]], selector: dict[str, str]) -> list[dict[str, Any]]:
    return [o for o in _workloads(objects).values()
            if selector.items() <= _pod_template(o)["metadata"].get("labels", {}).items()]


def _service_target(objects: list[dict[str, Any]], service: str, port: int) -> tuple[dict[str, Any], int]:
    """(the workload behind ``service``:``port``, the container port it reaches)."""
    svc = _by_kind(objects, "Service").get(service)
    assert svc is not None, f"no Service named {service!r}"
    [spec_port] = [p for p in svc["spec"]["ports"] if p["port"] == port] or [None]
    assert spec_port is not None, f"Service {service} does not expose port {port}"
    [workload] = _selected(objects, svc["spec"]["selector"])
    target = spec_port.get("targetPort", port)
    for container in _containers(workload):
        for p in container.get("ports", []):
            if target in (p.get("name"), p["containerPort"]):
                return workload, p["containerPort"]
    raise AssertionError(f"Service {service} port {port}: no container port {target!r}")


def _probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in container}


# --- files and kustomization -----------------------------------------------------
def test_every_manifest_parses_into_named_objects():
    assert MANIFESTS, "no manifests under k8s/"
    for path in [*MANIFESTS, KUSTOMIZATION]:
        docs = _docs(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: object without apiVersion/kind"
            if path != KUSTOMIZATION:
                assert doc.get("metadata", {}).get("name"), f"{path.name}: a {doc['kind']} without a name"


def test_kustomization_lists_every_manifest_and_its_generator_files_exist():
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator.get("files", []):
            path = (K8S / entry.split("=")[-1]).resolve()
            assert path.is_file(), f"configMapGenerator {generator['name']}: {entry} missing"
            # kustomize's default load restrictor refuses files outside the kustomization root
            assert path.is_relative_to(K8S.resolve()), f"{entry} lies outside k8s/"


def test_names_are_unique_per_kind(objects):
    seen = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(seen) == len(set(seen)), seen


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_and_wires_the_generated_config_map():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    namespace = yaml.safe_load(KUSTOMIZATION.read_text())["namespace"]
    assert all(o["metadata"].get("namespace") == namespace for o in built if o["kind"] != "Namespace")
    [saved] = [o for o in built
               if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kibana-saved-objects-")]
    [job] = [o for o in built if o["kind"] == "Job"]
    names = {v["configMap"]["name"] for v in _pod_template(job)["spec"]["volumes"] if "configMap" in v}
    assert saved["metadata"]["name"] in names, "the import Job does not mount the generated (hashed) ConfigMap"
    images = {c["image"] for o in built if o["kind"] in WORKLOAD_KINDS for c in _containers(o)}
    assert not any(image == "eyepic" for image in images), "kustomization `images:` did not set the Eyepic image"


# --- settings --------------------------------------------------------------------
def test_every_eyepic_variable_is_a_settings_field(objects):
    named = set()
    for path in [*MANIFESTS, KUSTOMIZATION]:
        named |= set(re.findall(r"\bEYEPIC_[A-Z0-9_]+", path.read_text()))
    assert named, "the manifests set no EYEPIC_* variables"
    unknown = sorted(n for n in named if n.removeprefix("EYEPIC_").lower() not in SETTINGS_FIELDS)
    assert not unknown, f"not Settings fields: {unknown}"


def test_eyepic_containers_load_their_settings(objects):
    config_maps = _config_maps(objects)
    containers = _eyepic_containers(objects)
    assert {name for name, _ in containers} == {"eyepic-web", "eyepic-grpc-api", "eyepic-indexer"}
    for name, container in containers:
        settings = Settings.from_env(_environment(container, config_maps))
        assert settings.host == "0.0.0.0", f"{name}: EYEPIC_HOST must be 0.0.0.0 or Services cannot reach it"
        assert settings.index == "elasticsearch" and settings.model_server, name
        assert str(settings.var_dir) in _mounts(_workloads(objects)[name], container), \
            f"{name}: EYEPIC_VAR_DIR is not a mounted (writable) volume"


# --- commands ----------------------------------------------------------------------
def test_command_lines_are_real_eyepic_subcommands(objects):
    parsed = {name: _cli_args(c) for name, c in _eyepic_containers(objects)}
    assert parsed["eyepic-web"].command == "serve" and parsed["eyepic-web"].workers == 4
    assert parsed["eyepic-grpc-api"].command == "serve-grpc" and parsed["eyepic-grpc-api"].no_web is True
    assert parsed["eyepic-indexer"].command == "index"


def test_indexer_crawls_into_the_catalog_volume_and_indexes_from_it(objects):
    indexer = _workloads(objects)["eyepic-indexer"]
    containers = {c["name"]: c for c in _containers(indexer)}
    path = Path(_cli_args(containers["indexer"]).path)
    mounts = _mounts(indexer, containers["indexer"])
    [mount] = [m for m in mounts if path.is_relative_to(m)]
    volume, read_only = mounts[mount]
    assert volume["persistentVolumeClaim"]["claimName"] == "eyepic-catalog" and read_only
    crawl = _cli_args(containers["crawl"])
    assert crawl.command == "crawl" and path == Path(crawl.out) / "catalog.jsonl"
    crawl_mounts = _mounts(indexer, containers["crawl"])
    volume, read_only = crawl_mounts[crawl.out]
    assert volume["persistentVolumeClaim"]["claimName"] == "eyepic-catalog" and not read_only
    volume, _ = crawl_mounts[str(Path(crawl.profile).parent)]
    assert volume["configMap"]["name"] == CRAWL_PROFILE_CONFIG_MAP
    assert (REPO / "crawler" / "profiles").is_dir() and f"configmap {CRAWL_PROFILE_CONFIG_MAP}" in \
        (REPO / "k8s" / "README.md").read_text(), "k8s/README.md must say how to create the profile ConfigMap"


# --- ports, Services, addresses --------------------------------------------------------
def test_eyepic_ports_agree_with_settings(objects):
    config_maps = _config_maps(objects)
    workloads = _workloads(objects)
    for name, container in _eyepic_containers(objects):
        settings = Settings.from_env(_environment(container, config_maps))
        annotations = _pod_template(workloads[name])["metadata"].get("annotations", {})
        if name == "eyepic-web":
            assert _container_port(container, "http") == settings.port
        if name == "eyepic-grpc-api":
            assert _container_port(container, "grpc") == settings.grpc_port
            assert _container_port(container, "metrics") == settings.port  # --no-web: /metrics on EYEPIC_PORT
        if name != "eyepic-indexer":
            assert annotations.get("prometheus.io/scrape") == "true", name
            assert int(annotations["prometheus.io/port"]) == settings.port, name
            assert annotations["prometheus.io/path"] == "/metrics", name


def test_every_service_reaches_a_container_port(objects):
    for name, svc in _by_kind(objects, "Service").items():
        selected = _selected(objects, svc["spec"]["selector"])
        assert len(selected) == 1, f"Service {name} selects {[o['metadata']['name'] for o in selected]}"
        for port in svc["spec"]["ports"]:
            _service_target(objects, name, port["port"])


def test_clients_point_at_services_that_lead_to_the_right_ports(objects):
    config_maps = _config_maps(objects)
    env = config_maps["eyepic-config"]
    settings = Settings.from_env(env)

    host, port = settings.model_server.rsplit(":", 1)
    workload, target = _service_target(objects, host, int(port))
    assert workload["metadata"]["name"] == "tf-serving"
    [tf] = _containers(workload)
    assert f"--port={target}" in tf["args"] and _container_port(tf, "grpc") == target

    url = urlsplit(settings.es_url)
    workload, target = _service_target(objects, url.hostname, url.port)
    assert workload["metadata"]["name"] == "elasticsearch" and target == 9200

    [kibana] = _containers(_workloads(objects)["kibana"])
    es_hosts = urlsplit(_environment(kibana, config_maps)["ELASTICSEARCH_HOSTS"])
    assert (es_hosts.hostname, es_hosts.port) == (url.hostname, url.port)

    [importer] = _containers(_workloads(objects)["kibana-import-saved-objects"])
    kibana_url = urlsplit(_environment(importer, config_maps)["KIBANA_URL"])
    workload, target = _service_target(objects, kibana_url.hostname, kibana_url.port)
    assert workload["metadata"]["name"] == "kibana" and target == _container_port(kibana, "http")


def test_config_maps_and_claims_referenced_exist(objects):
    config_maps = set(_config_maps(objects))
    claims = set(_by_kind(objects, "PersistentVolumeClaim"))
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    generated = {g["name"] for g in kustomization.get("configMapGenerator", [])}
    made_by_kubectl = {TF_SERVING_CONFIG_MAP, CRAWL_PROFILE_CONFIG_MAP}
    for name, obj in _workloads(objects).items():
        for volume in _pod_template(obj)["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps | generated | made_by_kubectl, name
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
        for container in _containers(obj):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                else:  # Secrets are made per environment; a profile without them still starts
                    assert source["secretRef"].get("optional") is True, name


# --- probes ------------------------------------------------------------------------------
class _ReadyAnalyzer:
    models = None
    classifier = "classifier"
    detector = "detector"
    model_version = "classifier/1"

    def ready(self) -> bool:
        return True


class _EmptyIndex:
    def count(self, filters: Any = None) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def flask_app(tmp_path_factory):
    from web import create_app

    settings = Settings(var_dir=tmp_path_factory.mktemp("k8s-var"))
    return create_app(settings, analyzer=_ReadyAnalyzer(), index=_EmptyIndex())


def test_web_probes_and_scrape_path_are_real_routes(objects, flask_app):
    web = _workloads(objects)["eyepic-web"]
    [container] = _containers(web)
    probes = _probes(container)
    assert {"livenessProbe", "readinessProbe"} <= set(probes)
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    paths = {p["httpGet"]["path"] for p in probes.values()}
    paths.add(_pod_template(web)["metadata"]["annotations"]["prometheus.io/path"])
    rules = {rule.rule for rule in flask_app.url_map.iter_rules()}
    client = flask_app.test_client()
    for path in paths:
        assert path in rules, f"{path} is not a route of the web app"
        assert client.get(path).status_code == 200, path
    for probe in probes.values():
        assert probe["httpGet"]["port"] == "http"


def test_grpc_api_probes_its_grpc_port(objects):
    [container] = _containers(_workloads(objects)["eyepic-grpc-api"])
    probes = _probes(container)
    assert {"livenessProbe", "readinessProbe"} <= set(probes)
    for probe in probes.values():
        port = probe.get("tcpSocket", probe.get("grpc", {})).get("port")
        assert port in ("grpc", _container_port(container, "grpc")), probe


def test_grpc_api_probes_are_native_grpc_health_checks_of_names_the_server_reports(objects):
    """The kubelet's grpc probe: a port number (no names) and a service grpcapi.health reports."""
    from grpcapi.health import LIVENESS, RECOMMENDER

    [container] = _containers(_workloads(objects)["eyepic-grpc-api"])
    probes = _probes(container)
    assert all(set(probe) & {"grpc", "tcpSocket", "httpGet", "exec"} == {"grpc"} for probe in probes.values())
    for probe in probes.values():
        assert probe["grpc"]["port"] == _container_port(container, "grpc") == Settings().grpc_port
    assert probes["readinessProbe"]["grpc"]["service"] == RECOMMENDER == "eyepic.v1.Recommender"
    # a down model server or index must not restart the pod: liveness asks the process only
    assert probes["livenessProbe"]["grpc"]["service"] == LIVENESS
    assert probes.get("startupProbe", probes["livenessProbe"])["grpc"]["service"] == LIVENESS


def test_every_container_has_probes_resources_and_limits(objects):
    for name, obj in _workloads(objects).items():
        for container in _containers(obj):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), name
            assert "memory" in resources.get("limits", {}), name
            if obj["kind"] in {"Deployment", "StatefulSet"}:
                assert {"livenessProbe", "readinessProbe"} <= set(_probes(container)), name
                for probe in _probes(container).values():
                    port = next(iter(probe.values()))["port"]
                    if isinstance(port, str):
                        _container_port(container, port)


# --- TF Serving ----------------------------------------------------------------------------
def _flags(args: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) if "=" in a else (a.removeprefix("--"), "") for a in args)


def test_tf_serving_flags_files_and_mounts(objects):
    workload = _workloads(objects)["tf-serving"]
    [container] = _containers(workload)
    image, tag = container["image"].rsplit(":", 1)
    assert image == "tensorflow/serving" and re.fullmatch(r"2\.\d+\.\d+", tag), container["image"]
    flags = _flags(container["args"])
    assert "enable_batching" in flags
    assert int(flags["port"]) == _container_port(container, "grpc") == 8500
    assert int(flags["rest_api_port"]) == _container_port(container, "http") == 8501
    mounts = _mounts(workload, container)
    config_files = {}
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        path = Path(flags[flag])
        volume, read_only = mounts[str(path.parent)]
        assert volume["configMap"]["name"] == TF_SERVING_CONFIG_MAP and read_only, flag
        assert (REPO / "serving" / path.name).is_file(), f"{flag}: serving/{path.name} does not exist"
        config_files[flag] = (REPO / "serving" / path.name).read_text()

    base_paths = re.findall(r'base_path:\s*"([^"]+)"', config_files["model_config_file"])
    models = re.findall(r'name:\s*"([^"]+)"', config_files["model_config_file"])
    assert base_paths and models
    models_mount = next(m for m, (v, _) in mounts.items() if "persistentVolumeClaim" in v)
    assert mounts[models_mount][0]["persistentVolumeClaim"]["claimName"] == "eyepic-models"
    assert mounts[models_mount][1], "TF Serving only reads the exports: mount them read-only"
    for base in base_paths:
        assert Path(base).is_relative_to(models_mount), f"{base} is outside the models mount {models_mount}"

    [monitoring_path] = re.findall(r'path:\s*"([^"]+)"', config_files["monitoring_config_file"])
    annotations = _pod_template(workload)["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == monitoring_path
    assert int(annotations["prometheus.io/port"]) == int(flags["rest_api_port"])
    for probe in _probes(container).values():
        path = probe["httpGet"]["path"]
        assert re.fullmatch(r"/v1/models/([^/]+)", path) and path.rsplit("/", 1)[1] in models, path
        assert probe["httpGet"]["port"] == "http"


def test_tf_serving_config_map_command_is_documented():
    readme = (REPO / "k8s" / "README.md").read_text()
    command = re.search(r"kubectl[^\n]*create configmap " + TF_SERVING_CONFIG_MAP + r"[^`]*", readme)
    assert command, "k8s/README.md must say how to create the tf-serving-config ConfigMap"
    for name in ("models.config", "batching.config", "monitoring.config"):
        assert f"--from-file=serving/{name}" in command.group(0)


def test_eyepic_pods_mount_the_served_exports_read_only_at_the_metadata_dir(objects):
    config_maps = _config_maps(objects)
    tf_claim = _workloads(objects)["tf-serving"]
    [tf] = _containers(tf_claim)
    tf_models = {v["persistentVolumeClaim"]["claimName"] for v, _ in _mounts(tf_claim, tf).values()
                 if "persistentVolumeClaim" in v}
    for name, container in _eyepic_containers(objects):
        if _cli_args(container).command == "crawl":  # reads shop pages, no model
            continue
        settings = Settings.from_env(_environment(container, config_maps))
        mounts = _mounts(_workloads(objects)[name], container)
        volume, read_only = mounts[str(settings.metadata_dir)]
        assert volume["persistentVolumeClaim"]["claimName"] in tf_models and read_only, name


# --- Elasticsearch, Kibana, autoscaling ----------------------------------------------------------
def test_elasticsearch_single_node_dev_profile(objects):
    from importlib.metadata import version

    es = _by_kind(objects, "StatefulSet")["elasticsearch"]
    [container] = _containers(es)
    assert container["image"] == "docker.elastic.co/elasticsearch/elasticsearch:9.2.0"
    # the server's major version must match the Python client's (elasticsearch-py checks it)
    assert container["image"].rsplit(":", 1)[1].split(".")[0] == version("elasticsearch").split(".")[0]
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["discovery.type"] == "single-node" and env["xpack.security.enabled"] == "false"
    heap = dict(re.findall(r"-Xm([sx])(\d+)[gG]", env["ES_JAVA_OPTS"]))
    assert heap["s"] == heap["x"], "min and max heap must match"
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") and int(heap["x"]) * 2 <= int(limit[:-2]), "heap at most half the memory"
    assert es["spec"]["replicas"] == 1 and es["spec"]["volumeClaimTemplates"]
    assert es["spec"]["serviceName"] in _by_kind(objects, "Service")
    assert "production enables security" in (K8S / "elasticsearch.yaml").read_text().lower()


def test_kibana_matches_elasticsearch_and_imports_the_saved_objects(objects):
    [kibana] = _containers(_workloads(objects)["kibana"])
    [es] = _containers(_by_kind(objects, "StatefulSet")["elasticsearch"])
    assert kibana["image"].rsplit(":", 1)[1] == es["image"].rsplit(":", 1)[1]
    job = _workloads(objects)["kibana-import-saved-objects"]
    [importer] = _containers(job)
    script = "\n".join(importer["command"] + importer["args"])
    assert "/api/saved_objects/_import?overwrite=true" in script and "kbn-xsrf: true" in script
    files = re.findall(r"file=@(\S+)", script)
    assert files
    mounts = _mounts(job, importer)
    for file in files:
        path = Path(file)
        volume, _ = mounts[str(path.parent)]
        assert volume["configMap"]["name"] == "kibana-saved-objects"
        assert (K8S / "kibana" / path.name).is_file(), f"k8s/kibana/{path.name} does not exist"


def test_autoscaler_and_disruption_budget_target_the_web_deployment(objects):
    deployments = _by_kind(objects, "Deployment")
    [hpa] = _by_kind(objects, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and target["name"] == "eyepic-web" in deployments
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    [container] = _containers(deployments["eyepic-web"])
    assert "cpu" in container["resources"]["requests"], "a CPU utilization target needs a CPU request"
    for pdb in _by_kind(objects, "PodDisruptionBudget").values():
        assert len(_selected(objects, pdb["spec"]["selector"]["matchLabels"])) == 1
