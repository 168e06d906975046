"""Kubernetes manifests: every overlay renders, every object validates (Kubernetes schemas, or the
Strimzi/CloudNativePG CRD schemas in deploy/k8s/crds), and the manifests keep the promises of
docs/operations.md (security context, probes, resources, HPAs, PDBs, NetworkPolicies, no
committed Secrets, every `dtm` command real)."""

from __future__ import annotations

import copy
import functools
from collections import Counter
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import (
    CRD_DIR,
    SERVICES,
    check_dtm_command,
    is_dtm_image,
    objects,
    pod_labels,
    pod_spec,
    render,
    setting_env_names,
)

KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
API_PORTS = {"registration": 8001, "sites": 8002, "reporting": 8003}
RELAYS = ("registration", "sites")
CONSUMERS = ("registration", "reporting")
# Secrets the manifests may reference; docs/operations.md tells how to create each one.
KNOWN_SECRETS = {
    "dtm-db-admin",
    "dtm-db-registration",
    "dtm-db-sites",
    "dtm-db-reporting",
    "dtm-jwt-public-key",
    "dtm-backup-s3",
}
# Containers that may write to their root file system, with the reason.
WRITABLE_ROOT = {("StatefulSet", "kafka"): "apache/kafka renders server.properties under /opt/kafka at start"}


# -- CRD schemas -------------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """OpenAPI v3 (structural CRD schema) -> JSON Schema where unknown fields are errors, as the
    API server's strict field validation (`kubectl apply`'s default) treats them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                found[(f"{group}/{version['name']}", kind)] = schema
    return found


def test_crd_schemas_are_valid_crds() -> None:
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd:
                kubernetes_validate.validate(crd, kubernetes_validate.latest_version(), strict=True)
    assert crd_schemas(), "no CRD schema under deploy/k8s/crds"


def test_strict_crd_schema_rejects_typos() -> None:
    """The CRD validation below must catch a misspelt field, not pass everything."""
    schema = crd_schemas()[("kafka.strimzi.io/v1", "KafkaTopic")]
    good = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": 6, "replicas": 3, "config": {"retention.ms": -1}},
    }
    jsonschema.validate(good, schema)
    bad = copy.deepcopy(good)
    bad["spec"]["partition"] = 6
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# -- rendering and schema validation ---------------------------------------------------------------


def test_overlay_renders(overlay: str) -> None:
    docs = objects(overlay)
    assert docs, f"overlays/{overlay} rendered nothing"
    names = Counter((d["kind"], d["metadata"]["name"]) for d in docs)
    assert not [k for k, n in names.items() if n > 1], "duplicate objects"


@pytest.mark.parametrize("k8s_version", KUBERNETES_VERSIONS)
def test_every_object_validates(overlay: str, k8s_version: str) -> None:
    failures = []
    schemas = crd_schemas()
    for obj in objects(overlay):
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        key = (obj["apiVersion"], obj["kind"])
        if key in schemas:
            errors = sorted(
                jsonschema.Draft7Validator(schemas[key]).iter_errors(obj), key=lambda e: list(e.absolute_path)
            )
            failures += [f"{ident}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
            continue
        if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith(
            ("apps/", "batch/", "policy/", "autoscaling/", "networking.k8s.io/", "rbac.authorization.k8s.io/")
        ):
            failures.append(f"{ident}: no CRD schema for {obj['apiVersion']} under deploy/k8s/crds")
            continue
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{ident}: {exc.message} at {'.'.join(map(str, exc.path))}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(f"{ident}: no schema ({exc})")
    assert not failures, "\n".join(failures)


# -- invariants ----------------------------------------------------------------------------------------


def _workloads(overlay: str) -> list[dict[str, Any]]:
    return [o for o in objects(overlay) if pod_spec(o) is not None]


def _all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_namespace_set_everywhere(overlay: str) -> None:
    expected = {"dev": "dtm-dev", "prod": "dtm"}[overlay]
    for obj in objects(overlay):
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == expected
        else:
            assert obj["metadata"].get("namespace") == expected, f"{obj['kind']}/{obj['metadata']['name']}"


def test_no_secret_is_committed(overlay: str) -> None:
    docs = objects(overlay)
    assert not [o for o in docs if o["kind"] == "Secret"], "Secrets must be created by the operator, not committed"
    referenced = set()
    text = render(overlay)
    for obj in docs:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for c in _all_containers(spec):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
            for src in c.get("envFrom", []):
                if "secretRef" in src:
                    referenced.add(src["secretRef"]["name"])
        for vol in spec.get("volumes", []):
            if "secret" in vol:
                referenced.add(vol["secret"]["secretName"])
    unknown = referenced - KNOWN_SECRETS
    assert not unknown, f"undocumented Secrets referenced: {unknown}"
    assert "password:" not in text.lower().replace("password: null", "")


def test_pod_security(overlay: str) -> None:
    failures = []
    for obj in _workloads(overlay):
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        assert spec is not None
        if spec.get("automountServiceAccountToken") is not False:
            failures.append(f"{ident}: automountServiceAccountToken must be false")
        if not spec.get("serviceAccountName"):
            failures.append(f"{ident}: no serviceAccountName")
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            failures.append(f"{ident}: pod securityContext.runAsNonRoot must be true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            failures.append(f"{ident}: seccompProfile RuntimeDefault")
        mounts_tmp_volume = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in _all_containers(spec):
            cid = f"{ident}[{c['name']}]"
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                failures.append(f"{cid}: allowPrivilegeEscalation must be false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                failures.append(f"{cid}: capabilities must drop ALL")
            writable_ok = (obj["kind"], obj["metadata"]["name"]) in WRITABLE_ROOT
            if sc.get("readOnlyRootFilesystem") is not True and not writable_ok:
                failures.append(f"{cid}: readOnlyRootFilesystem must be true")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in res.get(part, {}):
                        failures.append(f"{cid}: resources.{part}.{what} missing")
            if is_dtm_image(c["image"]):
                tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                if not tmp or tmp[0]["name"] not in mounts_tmp_volume:
                    failures.append(f"{cid}: needs an emptyDir at /tmp (read-only root file system)")
                if c.get("command"):
                    failures.append(f"{cid}: use args; the image's ENTRYPOINT is `dtm`")
    assert not failures, "\n".join(failures)


def test_every_dtm_command_exists() -> None:
    """Every container of our image runs a real `dtm` command (arguments and options included)."""
    failures = []
    for overlay_name in ("dev", "prod"):
        for obj in _workloads(overlay_name):
            spec = pod_spec(obj)
            assert spec is not None
            for c in _all_containers(spec):
                if is_dtm_image(c["image"]):
                    error = check_dtm_command([str(a) for a in c.get("args", [])])
                    if error:
                        failures.append(f"{overlay_name} {obj['kind']}/{obj['metadata']['name']}: {error}")
    assert not failures, "\n".join(failures)


def _deployments(overlay: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects(overlay) if o["kind"] == "Deployment"}


def test_apis_workers_and_probes(overlay: str) -> None:
    deps = _deployments(overlay)
    expected = {f"{s}-api" for s in SERVICES} | {f"{s}-relay" for s in RELAYS} | {f"{s}-consumer" for s in CONSUMERS}
    assert expected <= set(deps), f"missing Deployments: {expected - set(deps)}"
    for svc in SERVICES:
        c = deps[f"{svc}-api"]["spec"]["template"]["spec"]["containers"][0]
        assert c["args"][:2] == ["serve", svc]
        assert "0.0.0.0" in c["args"], "an API in a container must bind all interfaces"
        assert {p["containerPort"] for p in c["ports"]} == {API_PORTS[svc]}
        assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert c["startupProbe"]["httpGet"]["path"] == "/health/live"
    for name in [f"{s}-relay" for s in RELAYS] + [f"{s}-consumer" for s in CONSUMERS]:
        c = deps[name]["spec"]["template"]["spec"]["containers"][0]
        assert not c.get("ports"), f"{name}: workers have no HTTP port"
        # documented choice (docs/operations.md): no probes; a fatal error ends the process
        assert not any(k in c for k in ("livenessProbe", "readinessProbe")), name
    services = {o["metadata"]["name"]: o for o in objects(overlay) if o["kind"] == "Service"}
    for svc in SERVICES:
        assert services[svc]["spec"]["ports"][0]["port"] == API_PORTS[svc]


def test_hpas_and_pdbs(overlay: str) -> None:
    docs = objects(overlay)
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o for o in docs if o["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {f"{s}-api" for s in SERVICES}
    pdb_selectors = [o["spec"]["selector"]["matchLabels"] for o in docs if o["kind"] == "PodDisruptionBudget"]
    for name, dep in _deployments(overlay).items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in pdb_selectors), f"{name}: no PodDisruptionBudget"
    if overlay == "prod":
        assert all(h["spec"]["minReplicas"] >= 2 for h in hpas.values())


def test_prod_high_availability() -> None:
    deps = _deployments("prod")
    for svc in SERVICES:
        spec = deps[f"{svc}-api"]["spec"]
        assert spec["replicas"] >= 2
        keys = {t["topologyKey"] for t in spec["template"]["spec"]["topologySpreadConstraints"]}
        assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys
    for name, dep in deps.items():
        if name.endswith("-consumer"):
            assert 1 <= dep["spec"]["replicas"] <= 6, "consumers scale up to the partition count (6)"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get("matchExpressions")


def test_network_policies(overlay: str) -> None:
    docs = objects(overlay)
    policies = [o for o in docs if o["kind"] == "NetworkPolicy"]
    # every pod of ours is selected by a policy with both Ingress and Egress rules
    for obj in _workloads(overlay):
        labels = pod_labels(obj)
        if labels.get("app.kubernetes.io/name") in ("postgres", "kafka"):
            continue
        covering = [
            p
            for p in policies
            if _selects(p["spec"]["podSelector"], labels) and {"Ingress", "Egress"} <= set(p["spec"]["policyTypes"])
        ]
        assert covering, f"{obj['kind']}/{obj['metadata']['name']}: no NetworkPolicy restricts it"
    # each service may reach only PostgreSQL, Kafka and DNS (prod adds HTTPS for JWKS to the APIs)
    for svc in SERVICES:
        pol = next(p for p in policies if p["metadata"]["name"] == svc)
        ports = {(port["protocol"], port["port"]) for rule in pol["spec"]["egress"] for port in rule["ports"]}
        assert ports == {("TCP", 5432), ("TCP", 9092), ("UDP", 53), ("TCP", 53)}, ports
        for rule in pol["spec"]["egress"]:
            assert rule.get("to"), f"{svc}: an egress rule without `to` allows every destination"
    # the backends carry the label the policies allow
    backend_labels: set[str] = set()
    for obj in docs:
        if obj["kind"] == "StatefulSet":
            backend_labels.add(obj["spec"]["template"]["metadata"]["labels"].get("dtm-platform/backend", ""))
        elif obj["kind"] == "Cluster":
            backend_labels.add(obj["spec"]["inheritedMetadata"]["labels"].get("dtm-platform/backend", ""))
        elif obj["kind"] == "KafkaNodePool":
            backend_labels.add(obj["spec"]["template"]["pod"]["metadata"]["labels"].get("dtm-platform/backend", ""))
    assert {"postgres", "kafka"} <= backend_labels


def test_config_map_holds_only_real_settings(overlay: str) -> None:
    fields = setting_env_names()
    cms = [o for o in objects(overlay) if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("dtm-config")]
    assert len(cms) == 1
    data = cms[0]["data"]
    unknown = {k for k in data if k.startswith("DTM_")} - fields
    assert not unknown, f"ConfigMap keys that no setting reads: {unknown}"
    assert {"DB_HOST", "DB_PORT", "DB_NAME"} <= set(data)


def test_migration_job_runs_before_the_apps(overlay: str) -> None:
    jobs = {o["metadata"]["name"]: o for o in objects(overlay) if o["kind"] == "Job"}
    spec = jobs["dtm-db-migrate"]["spec"]["template"]["spec"]
    assert [c["args"] for c in spec["initContainers"]] == [["db", "provision"]]
    assert sorted(c["args"][1] for c in spec["containers"]) == sorted(SERVICES)
    for c in spec["containers"]:
        svc = c["args"][1]
        url = next(e["value"] for e in c["env"] if e["name"] == "DTM_DATABASE_URL")
        assert url.startswith(f"postgresql://{svc}:"), "each service migrates as its own role"
    if overlay == "dev":
        assert jobs["dtm-kafka-topics"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]


def test_prod_kafka_and_postgres() -> None:
    docs = objects("prod")
    kinds = Counter(o["kind"] for o in docs)
    assert kinds["Kafka"] == 1 and kinds["KafkaNodePool"] >= 1 and kinds["Cluster"] == 1
    topics = {o["spec"]["topicName"]: o["spec"] for o in docs if o["kind"] == "KafkaTopic"}
    assert set(topics) == {"dtm.registration", "dtm.registration.dlq", "dtm.sites", "dtm.sites.dlq"}
    for spec in topics.values():
        assert spec["partitions"] == 6
        assert str(spec["config"]["retention.ms"]) == "-1"
    kafka = next(o for o in docs if o["kind"] == "Kafka")
    pool = next(o for o in docs if o["kind"] == "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}, "KRaft: nodes are controllers and brokers"
    cm = next(o for o in docs if o["kind"] == "ConfigMap")
    assert cm["data"]["DTM_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
    cluster = next(o for o in docs if o["kind"] == "Cluster")
    assert cluster["spec"]["instances"] >= 2
    assert cm["data"]["DB_HOST"] == f"{cluster['metadata']['name']}-rw"
    assert cluster["spec"]["superuserSecret"]["name"] == "dtm-db-admin"
    backups = [o for o in docs if o["kind"] == "ScheduledBackup"]
    assert backups and backups[0]["spec"]["cluster"]["name"] == cluster["metadata"]["name"]


def test_dev_backends() -> None:
    sts = {o["metadata"]["name"]: o for o in objects("dev") if o["kind"] == "StatefulSet"}
    assert set(sts) == {"postgres", "kafka"}
    kafka = sts["kafka"]["spec"]["template"]["spec"]["containers"][0]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = {e["name"]: e.get("value") for e in kafka["env"]}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert sts["postgres"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:")
