"""docker-compose.yml, resolved by `docker compose config` with .env.example (no engine needed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, ROOT, clean_env

WORKERS = ("worker", "worker-cpu")
OVERRIDES = sorted((ROOT / "docker").glob("compose.*.example.yml"))
MMVAE_SERVICES = ("api", *WORKERS)


def run_config(
    compose: list[str], *overrides: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`docker compose config` as a user would run it with .env copied from .env.example."""
    files = [arg for f in (COMPOSE_FILE, *overrides) for arg in ("-f", str(f))]
    return subprocess.run(
        [
            *compose,
            "--project-directory",
            str(ROOT),
            *files,
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(MMVAE_ENV_FILE=".env.example", **env),
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def config(compose: list[str]) -> dict:
    out = run_config(compose, MMVAE_API_KEYS="test-key")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_redis_persists_and_never_evicts(config: dict) -> None:
    redis = config["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert [v["target"] for v in redis["volumes"] if v["type"] == "volume"] == ["/data"]
    assert "ports" not in redis, "Redis must not be published on the host by default"


@pytest.mark.parametrize("name", MMVAE_SERVICES)
def test_mmvae_services_wait_for_a_healthy_redis(config: dict, name: str) -> None:
    service = config["services"][name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["environment"]["MMVAE_REDIS_URL"] == "redis://redis:6379/0"
    # `config` inlines env files into `environment`; the file itself says which one is read.
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]
    assert raw["env_file"] == [{"path": "${MMVAE_ENV_FILE:-.env}", "required": True}]


@pytest.mark.parametrize("name", MMVAE_SERVICES)
def test_api_and_workers_share_the_model_store(config: dict, name: str) -> None:
    mounts = {v["source"]: v["target"] for v in config["services"][name]["volumes"]}
    assert mounts == {"model-store": "/data"}
    assert "model-store" in config["volumes"]


@pytest.mark.parametrize("name", MMVAE_SERVICES)
def test_services_build_the_project_image(config: dict, name: str) -> None:
    build = config["services"][name]["build"]
    assert build["dockerfile"] == "docker/Dockerfile"
    assert set(build["args"]) == {"TORCH_VARIANT", "TORCH_VERSION"}
    assert "user" not in config["services"][name], "the image's non-root USER must apply"


def test_api_serves_on_the_published_port_with_keys(config: dict) -> None:
    api = config["services"]["api"]
    assert api["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert [(p["target"], p["published"]) for p in api["ports"]] == [(8000, "8000")]
    assert api["environment"]["MMVAE_API_KEYS"] == "test-key"
    assert api["environment"]["MMVAE_EMBEDDED_WORKER"] == "false"
    assert api["build"]["args"]["TORCH_VARIANT"] == "cpu"


def test_gpu_worker_reserves_one_nvidia_gpu_and_runs_one_job(config: dict) -> None:
    worker = config["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["deploy"]["replicas"] == 1
    command = worker["command"]
    assert command[0] == "worker"
    assert command[command.index("--queues") + 1] == "gpu"
    assert command[command.index("--concurrency") + 1] == "1"
    assert command[command.index("--pool") + 1] == "prefork"  # time limits need prefork
    assert worker["build"]["args"]["TORCH_VARIANT"] != "cpu"


def test_multi_gpu_worker_takes_every_gpu_for_distributed_jobs(compose: list[str]) -> None:
    """Profile multi-gpu: one worker with all the machine's GPUs, which the API lets jobs ask
    for (MMVAE_JOB_GPUS on both), with the shared memory torchrun's processes use."""
    assert "worker-multi-gpu" not in yaml.safe_load(
        run_config(compose, MMVAE_API_KEYS="k").stdout
    )["services"]  # off by default
    out = run_config(compose, MMVAE_API_KEYS="k", COMPOSE_PROFILES="multi-gpu", GPU_WORKERS="0",
                     MMVAE_JOB_GPUS="8")  # fmt: skip
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    worker = services["worker-multi-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]
    command = worker["command"]
    assert command[command.index("--queues") + 1] == "gpu"
    assert worker["environment"]["MMVAE_JOB_GPUS"] == "8"
    assert services["api"]["environment"]["MMVAE_JOB_GPUS"] == "8"
    assert worker["shm_size"]


def test_cpu_worker_takes_the_cpu_queue(config: dict) -> None:
    worker = config["services"]["worker-cpu"]
    command = worker["command"]
    assert command[command.index("--queues") + 1] == "cpu"
    assert "deploy" not in worker or "resources" not in worker["deploy"]


def test_every_queue_has_a_consumer(config: dict) -> None:
    from workers.celery_app import QUEUES

    consumed = set()
    for name in WORKERS:
        command = config["services"][name]["command"]
        consumed |= set(command[command.index("--queues") + 1].split(","))
    assert set(QUEUES.values()) <= consumed


def test_machine_without_gpu_runs_everything_on_the_cpu_worker(compose: list[str]) -> None:
    out = run_config(
        compose,
        MMVAE_API_KEYS="test-key",
        GPU_WORKERS="0",
        WORKER_TORCH_VARIANT="cpu",
        CPU_WORKER_QUEUES="gpu,cpu",
    )
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert services["worker"]["deploy"]["replicas"] == 0
    command = services["worker-cpu"]["command"]
    assert command[command.index("--queues") + 1] == "gpu,cpu"


@pytest.mark.parametrize("name", WORKERS)
def test_workers_have_their_own_healthcheck_and_grace_period(config: dict, name: str) -> None:
    worker = config["services"][name]
    assert "healthz" not in " ".join(worker["healthcheck"]["test"])
    assert worker["stop_grace_period"]
    assert worker["init"] is True


def test_missing_api_key_is_a_config_error(compose: list[str]) -> None:
    out = run_config(compose)  # .env.example leaves MMVAE_API_KEYS empty
    assert out.returncode != 0
    assert "MMVAE_API_KEYS" in out.stderr


def test_every_compose_variable_is_documented_in_env_example() -> None:
    files = [COMPOSE_FILE, *OVERRIDES]
    variables = set(re.findall(r"\$\{(\w+)", "".join(f.read_text() for f in files)))
    documented = set(re.findall(r"^#? ?(\w+)=", ENV_EXAMPLE.read_text(), flags=re.M))
    assert variables - documented == set()


def test_dockerfile_user_is_not_root() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert users, "the image must set a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_settings_reference_is_up_to_date() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_settings.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_setting_is_documented() -> None:
    from service.settings import Settings
    from workers.settings import WorkerSettings

    doc = (ROOT / "docs" / "configuration.md").read_text()
    env = ENV_EXAMPLE.read_text()
    for cls in (Settings, WorkerSettings):
        for name in cls.model_fields:
            var = f"MMVAE_{name.upper()}"
            assert f"`{var}`" in doc, f"{var} missing from docs/configuration.md"
            assert re.search(rf"^#? ?{var}=", env, flags=re.M), f"{var} missing from .env.example"


def test_multi_gpu_example_pins_one_gpu_per_worker(compose: list[str]) -> None:
    out = run_config(compose, ROOT / "docker" / "compose.gpus.example.yml", MMVAE_API_KEYS="k")
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    pinned = {}
    for name in ("worker", "worker-gpu1"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert "count" not in device and device["driver"] == "nvidia"
        pinned[name] = device["device_ids"]
        assert services[name]["command"] == services["worker"]["command"]
        assert [v["source"] for v in services[name]["volumes"]] == ["model-store"]
    assert pinned == {"worker": ["0"], "worker-gpu1": ["1"]}


def test_public_redis_example_requires_a_password(compose: list[str]) -> None:
    override = ROOT / "docker" / "compose.redis-public.example.yml"
    assert run_config(compose, override, MMVAE_API_KEYS="k").returncode != 0
    out = run_config(compose, override, MMVAE_API_KEYS="k", REDIS_PASSWORD="pw")
    assert out.returncode == 0, out.stderr
    redis = json.loads(out.stdout)["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--requirepass pw" in command and "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert redis["environment"]["REDISCLI_AUTH"] == "pw"  # so the healthcheck authenticates
    assert [p["host_ip"] for p in redis["ports"]] == ["127.0.0.1"]
