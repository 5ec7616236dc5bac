"""The Helm chart helm/stepup-idp, rendered by Helm itself and validated.

Rendering: helm-python-sdk embeds Helm's Go SDK (``helm template`` semantics, offline; the
chart's values.schema.json is enforced by Helm while rendering). Every manifest is validated
against the Kubernetes OpenAPI schemas bundled with kubernetes-validate, strictly (unknown
fields are errors), for the oldest Kubernetes the chart supports and the newest bundled; the
ServiceMonitor, a CRD those schemas do not have, against the fields this chart uses. Done for
the default values and for tests/helm/values-production.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "stepup-idp"
PRODUCTION = yaml.safe_load((REPO / "tests" / "helm" / "values-production.yaml").read_text())
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
HOOKED = {"pre-install,pre-upgrade"}


def render(values: dict[str, Any] | None = None, name: str = "idp") -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=name, namespace="identity", is_install=True)
    manifests = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                manifests.append(document)
    return manifests


def by_kind(manifests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for manifest in manifests:
        kinds.setdefault(manifest["kind"], []).append(manifest)
    return kinds


def validate_service_monitor(manifest: dict[str, Any]) -> None:
    """monitoring.coreos.com/v1 ServiceMonitor, the fields this chart sets."""
    import jsonschema

    duration = {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
                                              "(([0-9]+)ms)?)$"}
    schema = {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {"type": "object", "additionalProperties": False,
                     "required": ["selector", "endpoints"], "properties": {
                         "selector": {"type": "object", "required": ["matchLabels"]},
                         "endpoints": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "additionalProperties": False,
                             "properties": {"port": {"type": "string"},
                                            "path": {"type": "string"},
                                            "interval": duration,
                                            "scrapeTimeout": duration}}}}},
        },
    }
    jsonschema.validate(manifest, schema)


@pytest.fixture(scope="module", params=["default", "production"])
def manifests(request) -> list[dict[str, Any]]:
    return render(None if request.param == "default" else PRODUCTION)


def test_every_manifest_is_valid_kubernetes(manifests):
    assert manifests
    for manifest in manifests:
        if manifest["kind"] == "ServiceMonitor":
            validate_service_monitor(manifest)
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_chart_lints_clean():
    for values in (None, PRODUCTION):
        report = helm.lint(str(CHART), values, strict=True)
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_default_release_has_the_expected_objects():
    kinds = by_kind(render())
    assert sorted(kinds) == sorted(["ConfigMap", "Deployment", "Job", "PodDisruptionBudget",
                                    "Service", "ServiceAccount"])
    assert kinds["Deployment"][0]["spec"]["replicas"] == 2


def test_production_release_has_ingress_hpa_pdb_and_service_monitor():
    kinds = by_kind(render(PRODUCTION))
    assert {"Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"} <= \
        set(kinds)
    assert "Secret" not in kinds  # existing Secrets only
    deployment = kinds["Deployment"][0]
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    ingress = kinds["Ingress"][0]["spec"]
    assert ingress["tls"][0]["secretName"] == "login-example-com-tls"
    assert ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == \
        kinds["Service"][0]["metadata"]["name"]
    assert kinds["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 2


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_pods_run_non_root_on_a_read_only_root(manifests):
    kinds = by_kind(manifests)
    for workload in kinds["Deployment"] + kinds["Job"]:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        context = _container(workload)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in _container(workload)["volumeMounts"]}
        assert "/tmp" in mounts  # the only writable place
        env = _env(_container(workload))
        assert env["IDP_INSTANCE_PATH"].startswith("/tmp/")


def test_probes_ports_and_metrics(manifests):
    kinds = by_kind(manifests)
    deployment = kinds["Deployment"][0]
    container = _container(deployment)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    port = container["ports"][0]["containerPort"]
    env = _env(container)
    assert env["IDP_SERVER__PORT"] == str(port) and env["IDP_SERVER__HOST"] == "0.0.0.0"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert "command" not in container and "args" not in container  # the image's idp serve
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    if "ServiceMonitor" in kinds:
        assert kinds["ServiceMonitor"][0]["spec"]["endpoints"][0]["path"] == "/metrics"
    else:
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == str(port)
    assert annotations["checksum/config"]
    # The Service and the PDB select the server pods, never the migration Job's pod.
    selector = kinds["Service"][0]["spec"]["selector"]
    job_labels = kinds["Job"][0]["spec"]["template"]["metadata"]["labels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert not selector.items() <= job_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"] == selector


def test_secrets_come_from_secret_references(manifests):
    kinds = by_kind(manifests)
    for workload in kinds["Deployment"] + kinds["Job"]:
        env = _env(_container(workload))
        for name in ("IDP_SECRET_KEY", "IDP_DATABASE_URL", "IDP_REDIS_URL"):
            assert set(env[name]) == {"secretKeyRef"}, (name, env[name])
    configmap = kinds["ConfigMap"][0]
    assert set(yaml.safe_load(configmap["data"]["config.yaml"]) or {}) <= {
        "branding", "tokens", "policy", "session"}


def test_existing_secrets_are_used_by_name_and_key():
    env = _env(_container(by_kind(render(PRODUCTION))["Deployment"][0]))
    assert env["IDP_SECRET_KEY"]["secretKeyRef"] == {"name": "stepup-idp-secrets",
                                                     "key": "secret-key"}
    assert env["IDP_DATABASE_URL"]["secretKeyRef"] == {"name": "idp-postgres-app", "key": "uri"}
    assert env["IDP_REDIS_URL"]["secretKeyRef"] == {"name": "stepup-idp-secrets",
                                                    "key": "redis-url"}
    defaults = _env(_container(by_kind(render())["Deployment"][0]))
    assert defaults["IDP_SECRET_KEY"]["secretKeyRef"]["name"] == "idp-stepup-idp"


def test_chart_can_create_the_secret_before_the_migration():
    values = {"secrets": {"create": True, "secretKey": "k" * 40,
                          "databaseUrl": "postgresql+psycopg://idp@db/idp",
                          "redisUrl": "redis://redis:6379/0",
                          "keys": {"secretKey": "IDP_SECRET_KEY",
                                   "databaseUrl": "IDP_DATABASE_URL",
                                   "redisUrl": "IDP_REDIS_URL"}}}
    kinds = by_kind(render(values))
    (secret,) = kinds["Secret"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(secret, version, strict=True)
    assert set(secret["stringData"]) == {"IDP_SECRET_KEY", "IDP_DATABASE_URL", "IDP_REDIS_URL"}
    env = _env(_container(kinds["Deployment"][0]))
    assert env["IDP_SECRET_KEY"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    # Hooks run before the release's ordinary objects: what the Job reads is a hook too, and
    # created first.
    job = kinds["Job"][0]
    for needed in (secret, kinds["ConfigMap"][0]):
        annotations = needed["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] in HOOKED
        assert int(annotations["helm.sh/hook-weight"]) < \
            int(job["metadata"]["annotations"]["helm.sh/hook-weight"])


def test_migration_job_runs_idp_init_before_install_and_upgrade(manifests):
    (job,) = by_kind(manifests)["Job"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    container = _container(job)
    assert container["command"] == ["idp", "init"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    deployment = by_kind(manifests)["Deployment"][0]
    assert container["image"] == _container(deployment)["image"]


@pytest.mark.parametrize(("values", "message"), [
    ({"issuer": "http://idp.example.com"}, "issuer"),
    ({"issuer": "https://idp.example.com/"}, "issuer"),
    ({"securityContext": {"readOnlyRootFilesystem": False,
                          "allowPrivilegeEscalation": False}}, "readOnlyRootFilesystem"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    ({"replicaCount": 0}, "replicaCount"),
    ({"server": {"port": 80, "workers": 2, "threads": 4, "timeout": 30}}, "port"),
    ({"config": {"secret_key": "in plain sight"}}, "config"),
    ({"extraEnv": [{"name": "IDP_SECRET_KEY", "value": "x"}]}, "extraEnv"),
    ({"secrets": {"create": True, "secretKey": "short", "keys": {
        "secretKey": "a", "databaseUrl": "b", "redisUrl": "c"}}}, "secretKey"),
    ({"unknownKey": 1}, "unknownKey"),
])
def test_schema_rejects_unsafe_or_unknown_values(values, message):
    with pytest.raises(helm.HelmValuesError) as failure:
        render(values)
    assert message in str(failure.value)


def test_in_process_store_is_refused_with_several_pods_or_workers():
    with pytest.raises(helm.HelmRenderError, match="in-process store"):
        render({"redis": {"enabled": False}})
    single = by_kind(render({"redis": {"enabled": False}, "replicaCount": 1,
                             "server": {"port": 8080, "workers": 1, "threads": 4,
                                        "timeout": 30}}))
    env = _env(_container(single["Deployment"][0]))
    assert "IDP_REDIS_URL" not in env
    assert "PodDisruptionBudget" not in single  # one pod: a PDB would block every drain


def test_values_file_documents_every_schema_key():
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"]) - {"global"}


GEOIP = {
    "extraVolumes": [{"name": "geoip", "persistentVolumeClaim": {"claimName": "geoip",
                                                                 "readOnly": True}}],
    "extraVolumeMounts": [{"name": "geoip", "mountPath": "/var/lib/GeoIP", "readOnly": True}],
    "config": {"policy": {"geoip_database": "/var/lib/GeoIP/GeoLite2-Country.mmdb"}},
}


def test_extra_volumes_mount_a_geoip_database():
    manifests = render(GEOIP)
    for manifest in manifests:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)
    kinds = by_kind(manifests)
    for workload in kinds["Deployment"] + kinds["Job"]:
        pod = workload["spec"]["template"]["spec"]
        assert {"name": "geoip", "persistentVolumeClaim": {"claimName": "geoip",
                                                           "readOnly": True}} in pod["volumes"]
        mounts = _container(workload)["volumeMounts"]
        assert {"name": "geoip", "mountPath": "/var/lib/GeoIP", "readOnly": True} in mounts
        assert {m["mountPath"] for m in mounts} >= {"/tmp", "/etc/stepup-idp"}
    (config_map,) = kinds["ConfigMap"]
    config = yaml.safe_load(next(iter(config_map["data"].values())))
    assert config["policy"]["geoip_database"] == "/var/lib/GeoIP/GeoLite2-Country.mmdb"


@pytest.mark.parametrize("values", [
    {"extraVolumes": [{"name": "tmp", "emptyDir": {}}]},
    {"extraVolumeMounts": [{"name": "geoip", "mountPath": "/tmp"}]},
    {"extraVolumeMounts": [{"name": "geoip", "mountPath": "relative/path"}]},
])
def test_extra_volumes_cannot_shadow_the_charts_own(values):
    with pytest.raises(helm.HelmValuesError):
        render(values)
