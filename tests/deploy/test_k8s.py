"""The Kubernetes manifests (deploy/k8s), checked offline: every object against the Kubernetes
JSON schemas that kubernetes-validate bundles (strict: an unknown field is an error), and the
manifests against the project: settings, ports, paths, the image, labels and names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_files import ROOT, SERVICE_DOCKERFILE, load_compose, parse_dockerfile

from movierec.serving.settings import Settings

K8S = ROOT / "deploy" / "k8s"
# the oldest Kubernetes release still supported upstream when the manifests were written, and
# the newest whose schemas kubernetes-validate bundles
VERSIONS = ("1.31", "1.37")
API = "movierec-api"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for path in _manifests() for doc in _documents(path)}


def _deployment() -> dict[str, Any]:
    return _objects()[("Deployment", API)]


def _container() -> dict[str, Any]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return container


def _settings_fields() -> set[str]:
    return {f"MOVIEREC_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    from kubernetes_validate import validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    for doc in _documents(path):
        try:
            validate(doc, version, strict=True)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']} at {where}: {exc.message}")
        except SchemaNotFoundError as exc:  # an unknown kind or apiVersion is a mistake too
            pytest.fail(f"{path.name}: {exc.message}")


def test_the_schema_check_catches_a_misspelt_field() -> None:
    from kubernetes_validate import validate
    from kubernetes_validate.utils import ValidationError

    broken = _deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(ValidationError, match="readynessProbe"):
        validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secrets() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    assert all((K8S / name).exists() for name in listed), listed
    assert listed == {p.name for p in _manifests()} - {"secret.example.yaml"}
    assert [i["name"] for i in kustomization["images"]] == [API]


def test_the_service_runs_as_several_stateless_replicas_with_probes_on_the_health_routes() -> None:
    from movierec.serving.routes import health

    paths = {route.path for route in health.router.routes}
    deployment, container = _deployment(), _container()
    assert deployment["spec"]["replicas"] >= 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/health" in paths
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert set(container["resources"]) == {"requests", "limits"} and container["resources"]["limits"]["memory"]
    # no state on the pod: every writable path is an emptyDir
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert all("emptyDir" in volumes[m["name"]] for m in container["volumeMounts"])


def test_the_pods_run_as_the_images_non_root_user_on_a_read_only_root() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    container = _container()
    uid = parse_dockerfile(SERVICE_DOCKERFILE).effective("USER").args.split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True and str(pod["securityContext"]["runAsUser"]) == uid != "0"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # what the service writes lands on a mounted volume: the registry's bundles and temporary files
    mounts = [Path(m["mountPath"]) for m in container["volumeMounts"]]
    config = _objects()[("ConfigMap", "movierec-api-config")]["data"]
    for written in (Path(config["MOVIEREC_MODEL_CACHE_DIR"]), Path("/tmp")):
        assert any(written.is_relative_to(m) for m in mounts), written


def test_ports_agree_with_the_image_the_service_and_prometheus() -> None:
    dockerfile = parse_dockerfile(SERVICE_DOCKERFILE)
    argv = dockerfile.effective("ENTRYPOINT").exec_form() + dockerfile.effective("CMD").exec_form()
    port = int(argv[argv.index("--port") + 1])
    container = _container()
    assert "command" not in container and "args" not in container  # the image's own `movierec serve`
    (declared,) = container["ports"]
    assert declared["containerPort"] == port == int(dockerfile.effective("EXPOSE").args)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == declared["name"]
    (service_port,) = _objects()[("Service", API)]["spec"]["ports"]
    assert service_port["targetPort"] == declared["name"]
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_every_setting_the_manifests_give_is_a_real_one_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = _objects()
    config = objects[("ConfigMap", "movierec-api-config")]["data"]
    secrets = objects[("Secret", "movierec-api-secrets")]["stringData"]
    direct = {e["name"]: e.get("value", "") for e in _container().get("env", [])}
    given = {**config, **secrets, **direct}
    assert set(given) <= _settings_fields(), set(given) - _settings_fields()
    assert {"MOVIEREC_DATABASE_URL", "MOVIEREC_MODEL_URI", "MOVIEREC_API_KEYS"} <= set(given)
    # the environment a pod sees: the image's, then the ConfigMap's and the Secret's
    image_env = parse_dockerfile(SERVICE_DOCKERFILE).effective_env()
    for name in [n for n in os.environ if n.startswith("MOVIEREC_")]:
        monkeypatch.delenv(name)
    for name, value in {**image_env, **given}.items():
        if name.startswith("MOVIEREC_"):
            monkeypatch.setenv(name, value)
    from movierec.serving.settings import load_service_settings

    loaded = load_service_settings()
    assert loaded.database_url == secrets["MOVIEREC_DATABASE_URL"] and loaded.auth == "on"
    # envFrom names objects that the manifests (or the documented example) define
    for source in _container()["envFrom"]:
        kind, ref = (
            ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
        )
        assert (kind, ref["name"]) in objects


def test_the_database_url_reaches_the_postgres_service() -> None:
    objects = _objects()
    url = urlsplit(objects[("Secret", "movierec-api-secrets")]["stringData"]["MOVIEREC_DATABASE_URL"])
    service = objects[("Service", "postgres")]
    (port,) = service["spec"]["ports"]
    assert (url.scheme, url.hostname, url.port) == ("postgresql", service["metadata"]["name"], port["port"])
    statefulset = objects[("StatefulSet", "postgres")]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert url.username == env["POSTGRES_USER"]["value"] and url.path == f"/{env['POSTGRES_DB']['value']}"
    key = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert key["key"] in objects[("Secret", key["name"])]["stringData"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert re.fullmatch(r"[\w.-]+:\d[\w.-]*", container["image"]), "pin the PostgreSQL image"


def test_labels_tie_the_service_budget_and_autoscaler_to_the_pods() -> None:
    objects = _objects()
    deployment = _deployment()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert objects[("Service", API)]["spec"]["selector"].items() <= pod_labels.items()
    pdb = objects[("PodDisruptionBudget", API)]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= pdb["minAvailable"] < deployment["spec"]["replicas"]
    hpa = objects[("HorizontalPodAutoscaler", API)]["spec"]
    assert hpa["scaleTargetRef"]["name"] == API and hpa["minReplicas"] >= 2
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_the_image_is_the_one_compose_builds_from_the_dockerfile() -> None:
    compose_image = load_compose()["services"]["api"]["image"]
    repository, _, tag = _container()["image"].partition(":")
    assert repository == compose_image.partition(":")[0] == API and tag
    assert f"docker build -t {API} ." in SERVICE_DOCKERFILE.read_text(encoding="utf-8")


def _relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' relabelling (the ``keep`` and ``replace`` actions, as its documentation defines
    them: source labels joined by ``;``, the regex anchored at both ends); None when dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                labels[rule["target_label"]] = match.expand(
                    re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.get("replacement", "$1"))
                )
        else:
            raise AssertionError(f"relabel action {action} not simulated here")
    return labels


def test_prometheus_scrapes_every_replica_at_its_annotated_port_and_path() -> None:
    config = yaml.safe_load(_objects()[("ConfigMap", "movierec-prometheus")]["data"]["prometheus.yml"])
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]

    def discovered(ip: str, name: str, annotated: dict[str, str]) -> dict[str, str]:
        """What pod discovery gives Prometheus for a pod (an annotation's name, sanitised)."""
        meta = {"__address__": f"{ip}:8000", "__metrics_path__": "/metrics", "__meta_kubernetes_pod_name": name}
        meta["__meta_kubernetes_namespace"] = "movierec"
        for key, value in annotated.items():
            meta["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        return meta

    port, path = annotations["prometheus.io/port"], annotations["prometheus.io/path"]
    targets = [
        _relabel(discovered(f"10.0.0.{n}", f"movierec-api-{n}", annotations), job["relabel_configs"]) for n in (1, 2)
    ]
    assert [(t["__address__"], t["__metrics_path__"], t["pod"]) for t in targets] == [
        (f"10.0.0.{n}:{port}", path, f"movierec-api-{n}") for n in (1, 2)
    ]
    assert _relabel(discovered("10.0.0.9", "postgres-0", {}), job["relabel_configs"]) is None  # not annotated
