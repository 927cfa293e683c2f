"""The Kubernetes manifests render (kustomize) into valid objects that run fdm as docs/deployment.md says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.tools import find_tool

KUSTOMIZE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
BASE = KUSTOMIZE / "base"
PRODUCTION = KUSTOMIZE / "overlays" / "production"
KUBERNETES_VERSION = "1.32.0"


def render(folder: Path) -> list[dict]:
    """`kubectl kustomize` when kubectl is installed; else the subset of kustomize these files use."""
    kubectl = find_tool("kubectl")
    if kubectl is not None:
        done = subprocess.run(
            [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return render_in_python(folder)


def render_in_python(folder: Path) -> list[dict]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if path.is_dir():
            objects += render_in_python(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load((folder / patch["path"]).read_text())
        for obj in objects:
            if (obj["kind"], obj["metadata"]["name"]) == (change["kind"], change["metadata"]["name"]):
                obj["data"] = {**obj.get("data", {}), **change.get("data", {})}
    replicas = {entry["name"]: entry["count"] for entry in kustomization.get("replicas", [])}
    images = {
        entry["name"]: f"{entry['newName']}:{entry['newTag']}" for entry in kustomization.get("images", [])
    }
    for obj in objects:
        if "namespace" in kustomization and obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = kustomization["namespace"]
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] in replicas:
            obj["spec"]["replicas"] = replicas[obj["metadata"]["name"]]
        for container in pod_containers(obj):
            container["image"] = images.get(container["image"], container["image"])
    return objects


def pod_containers(obj: dict) -> list[dict]:
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    return pod.get("initContainers", []) + pod.get("containers", [])


def by_name(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_manifests_are_valid_kubernetes_objects(folder):
    objects = render(folder)

    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_web_is_probed_on_health_live_and_ready_behind_a_service():
    objects = by_name(render(PRODUCTION))
    web = objects[("Deployment", "fdm-web")]
    [container] = web["spec"]["template"]["spec"]["containers"]

    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    allowed_hosts = objects[("ConfigMap", "fdm-config")]["data"]["ALLOWED_HOSTS"].split(",")
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        [host] = [h["value"] for h in probe["httpGet"]["httpHeaders"] if h["name"] == "Host"]
        assert host in allowed_hosts
    service = objects[("Service", "fdm-web")]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    assert "fdm-web" in allowed_hosts  # how Prometheus reaches the Service


def test_workers_scale_one_scheduler_fires_and_everything_waits_for_the_migrate_job():
    objects = by_name(render(PRODUCTION))
    worker = objects[("Deployment", "fdm-worker")]
    scheduler = objects[("Deployment", "fdm-scheduler")]

    assert worker["spec"]["replicas"] > 1
    assert (scheduler["spec"]["replicas"], scheduler["spec"]["strategy"]["type"]) == (1, "Recreate")
    for deployment, fires in ((worker, "false"), (scheduler, "true")):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "manage.py", "qcluster"]
        assert {e["name"]: e["value"] for e in container["env"]}["FDM_SCHEDULER"] == fires
    job = objects[("Job", "fdm-migrate")]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    images = set()
    for name in ("fdm-web", "fdm-worker", "fdm-scheduler"):
        deployment = objects[("Deployment", name)]
        [wait] = deployment["spec"]["template"]["spec"]["initContainers"]
        assert "migrate --check" in " ".join(wait["command"])
        images |= {container["image"] for container in pod_containers(deployment)}
    assert images == {migrate["image"]} == {"registry.example.com/fdm:0.1.0"}


def test_every_pod_runs_as_the_images_unprivileged_user_and_reads_settings_from_the_config_and_secret():
    for obj in render(PRODUCTION):
        if obj["kind"] not in {"Deployment", "Job"}:
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        for container in pod_containers(obj):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
            assert sources == {"fdm-config", "fdm-secrets"}, obj["metadata"]["name"]
    assert all(
        obj["metadata"].get("namespace") == "fdm" for obj in render(PRODUCTION) if obj["kind"] != "Namespace"
    )


def test_the_python_rendering_matches_kustomize():
    if find_tool("kubectl") is None:
        pytest.skip("kubectl is not installed")
    for folder in (BASE, PRODUCTION):
        kustomized = by_name(render(folder))
        simple = by_name(render_in_python(folder))
        assert set(kustomized) == set(simple)
        for key, obj in simple.items():
            assert obj.get("spec") == kustomized[key].get("spec"), key
            assert obj.get("data", obj.get("stringData")) == kustomized[key].get(
                "data", kustomized[key].get("stringData")
            )
