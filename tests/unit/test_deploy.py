"""The deployment files, which cannot be started here: every file parses, names only commands,
ports and environment variables the project has, and docker-compose.yml agrees with the
Kubernetes manifests (same processes, commands, ports and variables)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from internal.config.sla_config import load_config
from internal.obs.settings import METRICS_PORTS
from support.env import ROOT

K8S = ROOT / "deploy" / "k8s"
PROCESSES = {"server", "worker", "scheduler", "bridge"}
# Where a process's ports are configured: variable -> which container port it sets.
PORT_VARIABLES = {
    "SLAWATCH_GRPC_PORT": "grpc",
    "SLAWATCH_BRIDGE_PORT": "http",
    **{variable: "metrics" for variable, _ in METRICS_PORTS.values()},
}
SOURCES = [
    *ROOT.glob("internal/**/*.py"),
    *ROOT.glob("cmd/*/main.py"),
    ROOT / "sla_config.yaml",
]


@cache
def project_text() -> str:
    return "\n".join(p.read_text() for p in SOURCES)


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_documents() if d["kind"] == kind}


def deployments() -> dict[str, dict[str, Any]]:
    """Deployments by process (their component label)."""
    found = {}
    for d in of_kind("Deployment").values():
        found[d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]] = d
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def k8s_env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_services() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in compose()["services"].items() if k in PROCESSES}


def container_port(published: str) -> int:
    return int(str(published).rsplit(":", 1)[-1])


def script_of(command: list[str]) -> Path:
    assert command[0] == "python", command
    match = re.fullmatch(r"cmd/(slawatch-[a-z]+)/main\.py", command[1])
    assert match, command
    return ROOT / command[1]


def test_every_kubernetes_document_is_a_named_object() -> None:
    docs = list(k8s_documents())
    assert docs
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"].startswith("slawatch"), path


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [d for _, d in k8s_documents() if d["kind"] == "Kustomization"]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_one_deployment_per_process_running_its_entry_point() -> None:
    assert set(deployments()) == PROCESSES
    images = set()
    for process, d in deployments().items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
        c = container(d)
        assert script_of(c["command"]) == ROOT / f"cmd/slawatch-{process}/main.py"
        assert script_of(c["command"]).is_file()
        images.add(c["image"])
        assert c["resources"]["requests"] and c["resources"]["limits"], process
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert len(images) == 1


def test_environment_variables_exist_in_the_project() -> None:
    names = {n for d in deployments().values() for n in k8s_env(d)}
    names |= {n for s in compose_services().values() for n in s.get("environment", {})}
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", project_text()))
    assert not missing, f"not read anywhere in internal/, cmd/ or sla_config.yaml: {missing}"


def test_secret_references_resolve() -> None:
    secrets = of_kind("Secret")
    for process, d in deployments().items():
        for name, entry in k8s_env(d).items():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"], (process, name)
    # Database, Redis and every webhook the SLA config names are secrets, never plain values.
    worker = k8s_env(deployments()["worker"])
    config = load_config(ROOT / "sla_config.yaml")
    webhooks = {c.slack_webhook_env for c in config.channels.values()}
    for name in {"DATABASE_URL", "REDIS_URL", *webhooks}:
        assert "secretKeyRef" in worker[name].get("valueFrom", {}), name


def test_ports_probes_and_port_variables_agree() -> None:
    served = (ROOT / "internal/obs/ops_http.py").read_text()
    bridge_app = (ROOT / "internal/bridge/app.py").read_text()
    for process, d in deployments().items():
        c = container(d)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        env = k8s_env(d)
        for variable, port_name in PORT_VARIABLES.items():
            if variable in env:
                assert int(env[variable]["value"]) == ports[port_name], (process, variable)
        # The default of this process's metrics port is what the manifest uses.
        variable, default = METRICS_PORTS[process]
        assert ports["metrics"] == default, process
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            spec = c.get(probe)
            if spec is None:
                continue
            if "grpc" in spec:
                assert spec["grpc"]["port"] == ports["grpc"], (process, probe)
            else:
                http = spec["httpGet"]
                assert http["port"] in ports, (process, probe)
                handler = served if http["port"] == "metrics" else bridge_app
                assert f'"{http["path"]}"' in handler, (process, probe, http["path"])
        assert c.get("readinessProbe") and c.get("livenessProbe"), process
    server = container(deployments()["server"])
    assert server["readinessProbe"]["grpc"] == {"port": 50051}


def test_services_select_deployments_and_name_their_ports() -> None:
    services = of_kind("Service")
    assert {s["spec"]["selector"]["app.kubernetes.io/component"] for s in services.values()} == {
        "server",
        "bridge",
    }
    for name, service in services.items():
        d = deployments()[service["spec"]["selector"]["app.kubernetes.io/component"]]
        assert (
            service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        )
        names = {p["name"] for p in container(d)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (name, port)
    bridge_target = k8s_env(deployments()["bridge"])["SLAWATCH_GRPC_TARGET"]["value"]
    assert bridge_target == "slawatch-server:50051"


def test_autoscalers_and_disruption_budgets_point_at_deployments() -> None:
    names = {d["metadata"]["name"] for d in deployments().values()}
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler").values()
    }
    assert targets == {"slawatch-worker", "slawatch-bridge"}
    budgets = of_kind("PodDisruptionBudget")
    assert budgets
    covered = set()
    for pdb in budgets.values():
        wanted = pdb["spec"]["selector"]["matchLabels"].items()
        matching = [
            d
            for d in deployments().values()
            if wanted <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, pdb["metadata"]["name"]
        covered.add(matching[0]["metadata"]["name"])
    assert {"slawatch-server", "slawatch-bridge"} <= covered <= names


def test_sla_config_map_is_the_repository_file_mounted_as_a_directory(tmp_path: Path) -> None:
    (config_map,) = of_kind("ConfigMap").values()
    text = config_map["data"]["sla_config.yaml"]
    assert text == (ROOT / "sla_config.yaml").read_text()
    (tmp_path / "sla_config.yaml").write_text(text)
    load_config(tmp_path / "sla_config.yaml")  # valid
    for process, d in deployments().items():
        env = k8s_env(d)
        if "SLA_CONFIG_PATH" not in env:
            continue
        path = Path(env["SLA_CONFIG_PATH"]["value"])
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        (mount,) = [m for m in container(d)["volumeMounts"] if Path(m["mountPath"]) == path.parent]
        # A subPath mount never sees ConfigMap updates; the directory is what the watcher follows.
        assert "subPath" not in mount, process
        assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
        assert path.name == "sla_config.yaml"


def test_shutdown_fits_the_termination_grace_period() -> None:
    d = deployments()
    worker_timeout = float(k8s_env(d["worker"])["SLAWATCH_WORKER_SHUTDOWN_SECONDS"]["value"])
    assert d["worker"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > (
        worker_timeout + 5
    )
    server_grace = float(k8s_env(d["server"])["SLAWATCH_SHUTDOWN_GRACE_SECONDS"]["value"])
    pre_stop = int(container(d["server"])["lifecycle"]["preStop"]["exec"]["command"][1])
    # The grace period, then up to 5 s before stuck work is abandoned (internal/rpc/server.py).
    assert d["server"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > (
        pre_stop + server_grace + 5
    )


def test_compose_runs_the_same_processes_as_the_manifests() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    ours = compose_services()
    assert set(ours) == PROCESSES
    images = {s["image"] for s in ours.values()} | {
        container(d)["image"] for d in deployments().values()
    }
    assert len(images) == 1
    for process, service in ours.items():
        c = container(deployments()[process])
        assert service["command"] == c["command"], process
        assert sorted(service.get("environment", {})) == sorted(k8s_env(deployments()[process]))
        assert sorted(container_port(p) for p in service.get("ports", [])) == sorted(
            p["containerPort"] for p in c["ports"]
        ), process
        # Port variables set in both carry the same port.
        for variable in PORT_VARIABLES:
            if variable in service.get("environment", {}):
                assert str(service["environment"][variable]) == str(
                    k8s_env(deployments()[process])[variable]["value"]
                )


def dockerfile_lines() -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined


def test_dockerfile_is_multi_stage_non_root_and_names_what_exists() -> None:
    lines = dockerfile_lines()
    stages = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(stages) >= 2
    final = lines[lines.index(stages[-1]) :]
    (user,) = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for line in lines:
        words = line.split()
        if words[0].upper() == "COPY" and not words[1].startswith("--from"):
            for source in words[1:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source
    (cmd,) = [line for line in final if line.upper().startswith("CMD ")]
    assert script_of(yaml.safe_load(cmd[4:])).is_file()
    exposed = {
        int(p) for line in final if line.upper().startswith("EXPOSE ") for p in line.split()[1:]
    }
    in_manifests = {
        p["containerPort"] for d in deployments().values() for p in container(d)["ports"]
    }
    assert in_manifests <= exposed


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_every_process_has_an_entry_point(process: str) -> None:
    assert (ROOT / f"cmd/slawatch-{process}/main.py").is_file()


def test_the_image_installs_client_and_server_in_one_pip_command() -> None:
    """The server distribution needs `slawatch`, which lives in pkg/: installed in the same pip
    command, pip takes it from there and never asks an index for a package of that name. The
    image's own virtualenv is where the server's top-level `internal` package lives."""
    installs = [
        line.split("&&")[0].split()
        for line in dockerfile_lines()
        if line.startswith("RUN ") and "pip install" in line
    ]
    assert len(installs) == 1
    (words,) = installs
    assert words[:3] == ["RUN", "/opt/venv/bin/pip", "install"]
    assert words[3:] == ["./pkg", "."]
