"""The deployment files validate offline: the Dockerfile with hadolint, infra/compose.yaml against the
Compose specification's schema (check-jsonschema), the Kubernetes manifests (base files and the rendered
production overlay) against Kubernetes' schemas (kubernetes-validate), HAProxy configurations with
``haproxy -c``. Beyond the schemas, the properties the deployment depends on are asserted: a non-root
image without TensorFlow, probes, the GPU request, secrets only in Secrets, and who may reach what."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from backend.config import REPO_ROOT

BIN = Path(sys.executable).parent
K8S = REPO_ROOT / "infra" / "k8s"
K8S_VERSION = "1.32.0"
SECRET_FILES = ("master_key", "secret_key", "database_url", "s3_access_key", "s3_secret_key")


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing from the venv: install the dev extra (pip install -e '.[dev]')"
    return str(path)


def test_dockerfile_passes_hadolint_and_is_slim_and_non_root():
    dockerfile = REPO_ROOT / "Dockerfile"
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    stages = text.split("\nFROM ")
    assert len(stages) >= 3, "multi-stage: a build stage and a runtime stage"
    runtime = stages[-1]
    assert "COPY --from=build /opt/dermalink" in runtime
    assert "USER 10001" in runtime and "HEALTHCHECK" in runtime
    for forbidden in ("apt-get", "build-essential", "gcc", "pip install", "tensorflow"):
        assert forbidden not in runtime.lower(), f"{forbidden} in the runtime stage"
    install = text.split("pip install", 1)[1].split("\n")[0]
    assert install.rstrip(" \\").endswith('".[triton]"'), "only the triton extra: no TensorFlow (train)"


def test_compose_file_validates_and_keeps_secrets_in_files():
    compose = REPO_ROOT / "infra" / "compose.yaml"
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load(compose.read_text())
    services = spec["services"]
    assert {"db", "redis", "s3", "triton", "migrate", "api", "worker", "lb"} <= set(services)
    triton = services["triton"]
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert any(v.endswith(":/models:ro") and "model_repository" in v for v in triton["volumes"])
    assert services["api"]["deploy"]["replicas"] >= 2 and services["worker"]["deploy"]["replicas"] >= 2
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        assert env["DERMALINK_ENVIRONMENT"] == "production" and env["DERMALINK_AUTO_MIGRATE"] == "false"
        assert not {"DERMALINK_SECRET_KEY", "DERMALINK_MASTER_KEY", "DERMALINK_DATABASE_URL"} & set(env)
        targets = {s.get("target", s["source"]) for s in services[name]["secrets"]}
        assert {"DERMALINK_SECRET_KEY", "DERMALINK_MASTER_KEY", "DERMALINK_DATABASE_URL"} <= targets
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Only the API, the workers and the migration are on the database's network; Triton's likewise.
    on = {net: {n for n, s in services.items() if net in s.get("networks", [])} for net in spec["networks"]}
    assert on["data"] == {"db", "api", "worker", "migrate"}
    assert on["inference"] == {"triton", "api", "worker"}


def test_settings_read_container_secrets_from_files(tmp_path):
    """DERMALINK_SECRETS_DIR: the compose file's secrets arrive as files named like the variables."""
    (tmp_path / "DERMALINK_SECRET_KEY").write_text("s" * 40 + "\n")
    (tmp_path / "DERMALINK_DATABASE_URL").write_text("postgresql://dermalink@db:5432/dermalink\n")
    code = (
        "from backend.config import Settings; s = Settings(); "
        "print(len(s.secret_key.get_secret_value()), s.database_url)"
    )
    env = {"PATH": "/usr/bin:/bin", "DERMALINK_SECRETS_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["40", "postgresql://dermalink@db:5432/dermalink"]


def _validate(documents: list[dict], where: str) -> None:
    for doc in documents:
        if doc["kind"] == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def _load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kubernetes_base_manifests_validate():
    files = sorted((K8S / "base").glob("*.yaml"))
    listed = _load_all(K8S / "base" / "kustomization.yaml")[0]["resources"]
    assert sorted(listed) == sorted(f.name for f in files if f.name != "kustomization.yaml")
    for path in files:
        _validate(_load_all(path), path.name)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """The production overlay rendered by kustomize (kubectl's built-in), with throw-away secret files."""
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if not (kubectl or kustomize):
        pytest.skip("neither kubectl nor kustomize is installed: the overlay is not rendered")
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets"))
    secrets = copy / "overlays" / "production" / "secrets"
    secrets.mkdir()
    for name in SECRET_FILES:
        (secrets / name).write_text(f"test-{name}")
    command = [kubectl, "kustomize"] if kubectl else [kustomize, "build"]
    out = subprocess.run(
        [*command, str(copy / "overlays" / "production")], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _one(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_rendered_overlay_validates_and_wires_probes_scaling_and_secrets(rendered):
    _validate(rendered, "rendered production overlay")
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {"dermalink"}
    (secret,) = [d for d in rendered if d["kind"] == "Secret"]
    assert set(secret["data"]) == set(SECRET_FILES)
    for config in (d for d in rendered if d["kind"] == "ConfigMap"):
        for key, value in config["data"].items():
            assert not any(s in key.upper() for s in ("SECRET", "MASTER", "PASSWORD", "DATABASE_URL"))
            assert "test-" not in value

    api = _one(rendered, "Deployment", "api")
    assert api["spec"]["replicas"] == 3
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["image"].startswith("registry.example.org/dermalink:")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert {r["name"] for r in refs.values()} == {secret["metadata"]["name"]}
    assert {"DERMALINK_MASTER_KEY", "DERMALINK_SECRET_KEY"} <= set(refs)
    assert api["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    hpa = _one(rendered, "HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "api" and hpa["spec"]["minReplicas"] >= 2
    assert _one(rendered, "PodDisruptionBudget", "api")["spec"]["minAvailable"] >= 1
    assert _one(rendered, "Deployment", "worker")["spec"]["replicas"] == 4
    (triton,) = _one(rendered, "Deployment", "triton")["spec"]["template"]["spec"]["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in triton["volumeMounts"]
    (migrate,) = _one(rendered, "Job", "migrate")["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["dermalink", "db", "upgrade"]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_network_policies_allow_exactly_the_intended_paths():
    """Who may connect to the database, Redis and Triton, evaluated from the policies themselves: a pod
    reaches a port when the target's ingress allows it AND the source's egress allows it (default deny)."""
    policies = [d for d in _load_all(K8S / "base" / "networkpolicies.yaml") if d["kind"] == "NetworkPolicy"]
    pods = {
        name: {"app.kubernetes.io/name": label}
        for name, label in {
            "api": "dermalink-api",
            "worker": "dermalink-worker",
            "migrate": "dermalink-migrate",
            "triton": "triton",
            "redis": "redis",
            "postgresql": "postgresql",
        }.items()
    }

    def allowed(direction: str, pod: dict, peer: dict, port: int) -> bool:
        key = "ingress" if direction == "Ingress" else "egress"
        peer_key = "from" if key == "ingress" else "to"
        selecting = [p for p in policies if _selects(p["spec"]["podSelector"], pod)]
        assert any(direction in p["spec"]["policyTypes"] for p in selecting)  # default-deny covers it
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                ports = {p["port"] for p in rule.get("ports", [])}
                peers = rule.get(peer_key, [])
                if ports and port not in ports:
                    continue
                if any("podSelector" in p and _selects(p["podSelector"], peer) for p in peers):
                    return True
        return False

    def reaches(source: str, target: str, port: int) -> bool:
        return allowed("Egress", pods[source], pods[target], port) and allowed(
            "Ingress", pods[target], pods[source], port
        )

    clients = ("api", "worker", "migrate", "triton", "redis")
    assert {c for c in clients if reaches(c, "postgresql", 5432)} == {"api", "worker", "migrate"}
    assert {c for c in (*clients, "postgresql") if c != "triton" and reaches(c, "triton", 8001)} == {
        "api",
        "worker",
    }
    assert {c for c in (*clients, "postgresql") if c != "redis" and reaches(c, "redis", 6379)} == {
        "api",
        "worker",
    }


def test_haproxy_configurations_are_valid(tmp_path):
    from backend.cluster.topology import Part, haproxy_config

    haproxy = shutil.which("haproxy")
    assert haproxy, "haproxy is missing (infra/test.sh installs Debian's package)"
    generated = tmp_path / "haproxy.cfg"
    apis = [Part(name=f"api-{i}", kind="api", command=[], port=8000 + i) for i in (1, 2)]
    generated.write_text(haproxy_config(18080, 18404, apis))
    for cfg in (generated, REPO_ROOT / "infra" / "docker" / "haproxy.cfg"):
        result = subprocess.run([haproxy, "-c", "-f", str(cfg)], check=False, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "option httpchk GET /readyz" in cfg.read_text()


def test_cluster_prometheus_configuration_is_valid(tmp_path):
    """The scrape configuration `dermalink cluster up` writes passes promtool (Debian's prometheus package),
    and scrapes the API's /metrics with the bearer token from a file, never inline."""
    from backend.cluster.topology import prometheus_config

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (infra/test.sh installs Debian's prometheus package)"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "metrics.token").write_text("scrape-token")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        prometheus_config(
            {"api_ports": [18001, 18002], "triton_metrics_port": 18102, "lb_stats_port": 18404}, tmp_path
        )
    )
    result = subprocess.run(
        [promtool, "check", "config", str(config)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert set(jobs) == {"triton", "dermalink-api", "haproxy"}
    api = jobs["dermalink-api"]
    assert api["authorization"]["credentials_file"].endswith("metrics.token")
    assert "scrape-token" not in config.read_text()
    assert api["static_configs"][0]["targets"] == ["127.0.0.1:18001", "127.0.0.1:18002"]
