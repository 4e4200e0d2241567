"""The manifests in deploy/: every overlay renders and matches its schema, and what the
objects say agrees with the code they deploy (settings, ports, the queue's stream, the
signing identity). `make deploy-test` runs deploy/podman for real; the KEDA, HPA and GPU
objects cannot run here, so their structure and meaning are checked here."""

from __future__ import annotations

import asyncio
import copy
import functools
import io
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from PIL import Image
from referencing import Registry, Resource

from bot.config import Settings, load_settings
from bot.jobs import FailureReason
from bot.queue import QueueConfig
from provenance.labeller import LabelInfo, new_mark_id
from provenance.labelling import load_labeller
from tests.conftest import free_port
from tests.kustomize import KustomizeError, find, render
from tests.queue_helpers import JobQueue, request, result_for

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).parent / "schemas"
OVERLAYS = sorted(p.parent.name for p in DEPLOY.glob("*/kustomization.yaml"))
SCHEMA_OF = {
    "Deployment": "apps-v1-deployment.yaml",
    "ScaledObject": "keda-v1alpha1-scaledobject.yaml",
    "HorizontalPodAutoscaler": "autoscaling-v2-hpa.yaml",
    "ConfigMap": "core-v1.yaml",
    "Service": "core-v1.yaml",
    "PersistentVolumeClaim": "core-v1.yaml",
}
LIBRARY_VARIABLES = {"HF_HUB_OFFLINE", "HF_HOME"}
"""Container environment that is not an avatarbot setting but read by a library."""
SELFIE = (Path(__file__).parent / "data" / "astronaut.jpg").read_bytes()


@functools.cache
def _schemas() -> dict[str, Any]:
    return {p.name: yaml.safe_load(p.read_text()) for p in SCHEMAS.glob("*.yaml")}


@functools.cache
def _validator(schema: str) -> Draft202012Validator:
    schemas = _schemas()
    registry = Registry().with_resources(
        (name, Resource.from_contents(contents)) for name, contents in schemas.items()
    )
    return Draft202012Validator(schemas[schema], registry=registry)


def schema_errors(resource: dict[str, Any]) -> list[str]:
    validator = _validator(SCHEMA_OF[resource["kind"]])
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(resource)]


def container(resources: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (only,) = find(resources, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def config(resources: list[dict[str, Any]]) -> dict[str, str]:
    return dict(find(resources, "ConfigMap", "avatarbot-config")["data"])


def settings_of(resources: list[dict[str, Any]], deployment: str) -> Settings:
    """What the container would read: the ConfigMap, then its own env on top."""
    return load_settings({**config(resources), **env(container(resources, deployment))})


# --- structure -----------------------------------------------------------------------


def test_the_schemas_are_valid_json_schemas() -> None:
    for name, schema in _schemas().items():
        Draft202012Validator.check_schema(schema)
        assert name in set(SCHEMA_OF.values()) | {"common.yaml"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_to_valid_objects(overlay: str) -> None:
    resources = render(DEPLOY / overlay)
    assert {r["kind"] for r in resources} >= {"ConfigMap", "Deployment"}
    for resource in resources:
        name = f"{overlay}: {resource['kind']}/{resource['metadata']['name']}"
        assert schema_errors(resource) == [], name
    # One namespace for all, the objects an overlay adds included.
    assert {r["metadata"].get("namespace") for r in resources} == {"avatarbot"}


def _broken(overlay: str, kind: str, path: list[str | int], value: Any) -> dict[str, Any]:
    """The worker's object of this kind in `overlay`, with one field changed (or deleted)."""
    resource = copy.deepcopy(find(render(DEPLOY / overlay), kind, "worker"))
    node: Any = resource
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return resource


DELETE = object()
CONTAINER: list[str | int] = ["spec", "template", "spec", "containers", 0]
TRIGGER: list[str | int] = ["spec", "triggers", 0, "metadata"]


@pytest.mark.parametrize(
    ("overlay", "kind", "path", "value"),
    [
        ("keda", "ScaledObject", ["spec", "maxReplicas"], 8),  # not KEDA's field name
        ("keda", "ScaledObject", [*TRIGGER, "streamLength"], 8),  # a number, not a string
        ("keda", "ScaledObject", [*TRIGGER, "stream"], DELETE),
        ("keda", "ScaledObject", [*TRIGGER, "lagcount"], "5"),
        ("keda", "ScaledObject", ["spec", "scaleTargetRef"], DELETE),
        ("hpa", "HorizontalPodAutoscaler", ["spec", "maxReplicas"], DELETE),
        ("cuda", "Deployment", [*CONTAINER, "resources", "limits", "nvidia.com/gpu"], "one"),
        ("cuda", "Deployment", ["spec", "template", "spec", "tolerations", 0, "effect"], "No"),
        ("cuda", "Deployment", [*CONTAINER, "livenessProbe", "exec"], {"command": ["true"]}),
        ("base", "Deployment", [*CONTAINER, "envFrom", 0, "configMapRef", "nmae"], "x"),
    ],
)
def test_the_schemas_refuse_broken_objects(
    overlay: str, kind: str, path: list[str | int], value: Any
) -> None:
    assert schema_errors(_broken(overlay, kind, path, value))


def test_config_values_must_be_strings() -> None:
    resource = copy.deepcopy(find(render(DEPLOY / "base"), "ConfigMap", "avatarbot-config"))
    resource["data"]["AVATARBOT_BATCH_SIZE"] = 4
    assert schema_errors(resource)


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(KustomizeError, match="namePrefix"):
        render(tmp_path)


# --- meaning ---------------------------------------------------------------------------


def test_config_names_only_real_settings() -> None:
    known = {
        choice
        for f in Settings.model_fields.values()
        if f.validation_alias is not None
        for choice in getattr(f.validation_alias, "choices", ())
        if isinstance(choice, str) and choice.isupper()
    }
    for overlay in OVERLAYS:
        resources = render(DEPLOY / overlay)
        assert set(config(resources)) <= known, overlay
        for deployment in ("bot", "worker"):
            assert set(env(container(resources, deployment))) <= known | LIBRARY_VARIABLES
            settings_of(resources, deployment)  # raises ConfigError on a bad value


def test_probes_reach_the_servers_the_settings_start() -> None:
    resources = render(DEPLOY / "base")
    ports = {
        "bot": settings_of(resources, "bot").web_port,
        "worker": settings_of(resources, "worker").worker_health_port,
    }
    assert ports == {"bot": 8080, "worker": 9100}
    for deployment, port in ports.items():
        c = container(resources, deployment)
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            target = c[probe]["httpGet"]
            assert named[target["port"]] == port, (deployment, probe)
            assert target["path"] in ("/healthz", "/metrics")
        assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_podman_overlay_changes_only_what_podman_needs() -> None:
    base, podman = render(DEPLOY / "base"), render(DEPLOY / "podman")
    for deployment in ("bot", "worker"):
        ours, theirs = container(base, deployment), container(podman, deployment)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            http = ours[probe]["httpGet"]
            port = next(p["containerPort"] for p in ours["ports"] if p["name"] == http["port"])
            assert theirs[probe]["exec"]["command"] == [
                "avatarbot-healthcheck", str(port), http["path"]
            ]  # fmt: skip
        for key in ("command", "env", "resources", "securityContext"):
            assert theirs[key] == ours[key], (deployment, key)
        assert theirs["image"] == "localhost/avatarbot:latest"
    changed = {
        "REDIS_URL",
        "AVATARBOT_RECLAIM_IDLE_S",
        "AVATARBOT_RECLAIM_INTERVAL_S",
        "AVATARBOT_WEB_IDENTITIES_PER_IP_DAY",  # the test's browsers share one address
        "AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE",
    }
    assert {k: v for k, v in config(podman).items() if k not in changed} == {
        k: v for k, v in config(base).items() if k not in changed
    }


def test_keda_trigger_reads_the_stream_the_queue_writes() -> None:
    resources = render(DEPLOY / "keda")
    scaled = find(resources, "ScaledObject", "worker")
    (trigger,) = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    settings = settings_of(resources, "worker")
    assert trigger["type"] == "redis-streams"
    assert meta["stream"] == f"{settings.key_prefix}:jobs"
    assert "consumerGroup" not in meta  # with one, KEDA reads pending or lag, not XLEN
    assert int(meta["streamLength"]) == 2 * settings.batch_size
    redis = find(resources, "Service", "redis")
    namespace = redis["metadata"]["namespace"]
    port = redis["spec"]["ports"][0]["port"]
    assert meta["address"] == f"redis.{namespace}.svc.cluster.local:{port}"
    assert scaled["metadata"]["namespace"] == namespace
    assert find(resources, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


async def test_the_stream_length_is_the_jobs_queued_plus_running(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """The KEDA signal (XLEN of `<prefix>:jobs`) against the real queue."""
    queue = JobQueue(redis_client, QueueConfig(prefix=key_prefix))
    await queue.ensure_groups()
    stream = f"{key_prefix}:jobs"
    for n in range(3):
        await queue.enqueue(request(n), SELFIE)
    assert await redis_client.xlen(stream) == 3
    claimed = await queue.claim("worker-a", 2, 10)
    assert len(claimed) == 2
    assert await redis_client.xlen(stream) == 3  # 1 queued + 2 running
    assert await queue.complete(claimed[0], result_for(claimed[0]))
    assert await redis_client.xlen(stream) == 2  # 1 queued + 1 running
    assert await queue.fail(claimed[1], FailureReason.GENERATION_FAILED)
    (last,) = await queue.claim("worker-b", 4, 10)
    assert await queue.complete(last, result_for(last))
    assert await redis_client.xlen(stream) == 0


def test_hpa_recipe_scales_like_the_scaled_object() -> None:
    keda = find(render(DEPLOY / "keda"), "ScaledObject", "worker")["spec"]
    hpa = find(render(DEPLOY / "hpa"), "HorizontalPodAutoscaler", "worker")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "worker",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (
        keda["minReplicaCount"],
        keda["maxReplicaCount"],
    )
    (metric,) = hpa["metrics"]
    assert (
        metric["external"]["target"]["averageValue"]
        == keda["triggers"][0]["metadata"]["streamLength"]
    )
    assert hpa["behavior"] == keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    rules = yaml.safe_load((DEPLOY / "hpa" / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = rules["external"]
    assert rule["name"]["as"] == metric["external"]["metric"]["name"]
    assert 'state="queued"' in rule["metricsQuery"]
    assert 'state="running"' in rule["metricsQuery"]


def test_gpu_overlay_gives_each_worker_one_gpu_and_local_weights() -> None:
    base, cuda = render(DEPLOY / "base"), render(DEPLOY / "cuda")
    worker = container(cuda, "worker")
    settings = settings_of(cuda, "worker")
    assert worker["image"] == "avatarbot-cuda:latest"
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in worker["resources"]["requests"]
    assert settings.backend == "diffusers"
    assert settings.local_files_only
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    assert mounts["/models"]["readOnly"]
    assert str(settings.model).startswith("/models/")
    assert str(settings.ip_adapter).startswith("/models/")
    spec = find(cuda, "Deployment", "worker")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "models")
    claim = find(cuda, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    startup = worker["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # model load
    assert spec["terminationGracePeriodSeconds"] >= 120
    assert container(cuda, "bot") == container(base, "bot")  # the bot stays on the CPU image
    assert find(cuda, "Deployment", "redis") == find(base, "Deployment", "redis")


def test_the_identity_secret_holds_all_an_instance_needs(tmp_path: Path) -> None:
    """Bot and workers label and verify with the files the Secret's items name: made once
    by an instance, those files alone give the same signer and watermark key back."""
    resources = render(DEPLOY / "base")
    made = tmp_path / "made"
    first = load_labeller(load_settings({"AVATARBOT_DATA_DIR": str(made)}))
    info = LabelInfo(mark_id=new_mark_id(), style_id="oil", created_at=datetime.now(UTC))
    with Image.open(io.BytesIO(SELFIE)) as photo:
        labelled = first.label(photo.convert("RGB").resize((512, 512)), info)
    for deployment in ("bot", "worker"):
        spec = find(resources, "Deployment", deployment)["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if "secret" in v]
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["readOnly"]
        assert str(settings_of(resources, deployment).data_dir) == mount["mountPath"]
        secret = tmp_path / deployment
        for item in volume["secret"]["items"]:
            (secret / item["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(made / item["path"], secret / item["path"])
        files = sorted(p for p in secret.rglob("*") if p.is_file())
        again = load_labeller(load_settings({"AVATARBOT_DATA_DIR": str(secret)}))
        assert sorted(p for p in secret.rglob("*") if p.is_file()) == files  # nothing created
        verdict = again.verify(labelled)
        assert verdict.signed_by_us, deployment
        assert verdict.watermark_mark_id == info.mark_id, deployment


# --- the image's health check ------------------------------------------------------------


@pytest.fixture
async def health_server() -> Any:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def down(request: web.Request) -> web.Response:
        return web.json_response({"status": "unavailable"}, status=503)

    app = web.Application()
    app.router.add_get("/healthz", ok)
    app.router.add_get("/down", down)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def _healthcheck(*args: str) -> int:
    script = DEPLOY / "image" / "healthcheck.py"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(script), *args], capture_output=True, check=False
    )
    return done.returncode


async def test_the_image_healthcheck_follows_healthz(health_server: int) -> None:
    port = str(health_server)
    assert await _healthcheck(port, "/healthz") == 0
    assert await _healthcheck(port) == 0
    assert await _healthcheck(port, "/down") == 1
    assert await _healthcheck(str(free_port()), "/healthz") == 1  # nothing listening
    assert await _healthcheck("not-a-port") == 2


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "kb": 1000, "mb": 10**6, "gb": 10**9}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return int(quantity[: -len(unit)]) * factor
    return int(quantity)


def test_redis_keeps_jobs_on_disk_and_refuses_writes_before_its_limit() -> None:
    redis = container(render(DEPLOY / "base"), "redis")
    args = dict(zip(redis["args"][::2], redis["args"][1::2], strict=True))
    assert args["--appendonly"] == "yes"
    assert args["--maxmemory-policy"] == "noeviction"  # never drop a job silently
    assert args["--dir"] == next(m["mountPath"] for m in redis["volumeMounts"])
    assert _bytes(args["--maxmemory"]) < _bytes(redis["resources"]["limits"]["memory"])


# --- the image's recipe ------------------------------------------------------------------


def test_the_image_copies_the_tree_not_package_folders() -> None:
    """Packages move and appear: the Dockerfile names none, the wheel build finds them."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY")]
    sources = {part for args in copies for part in args[:-1] if not part.startswith("--")}
    assert sources == {"pyproject.toml", "constraints.txt", ".", "/wheels", "/opt/avatarbot",
                       "deploy/image/healthcheck.py"}  # fmt: skip
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", ".env", "**/__pycache__", "tests", "*.egg-info"} <= ignored
