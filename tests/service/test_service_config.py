"""The service config (where jobs run) and that local mode never touches Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config import RayConfig, ServiceConfig
from tests.conftest import ROOT


def test_unset_address_means_local_mode_whatever_else_is_set():
    config = ServiceConfig.from_env({"TOONFORGE_RAY_MAX_REPLICAS": "9", "TOONFORGE_RAY_ADDRESS": "  "})
    assert config.ray is None and config.mode == "local"


def test_every_ray_setting_is_read():
    config = ServiceConfig.from_env(
        {
            "TOONFORGE_RAY_ADDRESS": "10.0.0.5:6379",
            "TOONFORGE_RAY_NAMESPACE": "ns",
            "TOONFORGE_RAY_APP": "tf",
            "TOONFORGE_RAY_MIN_REPLICAS": "2",
            "TOONFORGE_RAY_MAX_REPLICAS": "8",
            "TOONFORGE_RAY_TARGET_ONGOING_REQUESTS": "1.5",
            "TOONFORGE_RAY_MAX_ONGOING_REQUESTS": "2",
            "TOONFORGE_RAY_REPLICA_CPUS": "2",
            "TOONFORGE_RAY_DIFFUSION_GPUS": "0.5",
            "TOONFORGE_RAY_DIFFUSION_MIN_REPLICAS": "0",
            "TOONFORGE_RAY_DIFFUSION_MAX_REPLICAS": "4",
            "TOONFORGE_RAY_JOB_TIMEOUT_S": "90",
        }
    )
    assert config.mode == "ray"
    assert config.ray == RayConfig(
        address="10.0.0.5:6379",
        namespace="ns",
        app_name="tf",
        min_replicas=2,
        max_replicas=8,
        target_ongoing_requests=1.5,
        max_ongoing_requests=2,
        replica_cpus=2.0,
        diffusion_gpus=0.5,
        diffusion_min_replicas=0,
        diffusion_max_replicas=4,
        job_timeout_s=90.0,
    )
    assert config.ray.max_in_flight == 16  # 8 replicas x 2 jobs each


def test_auto_uses_defaults():
    ray = ServiceConfig.from_env({"TOONFORGE_RAY_ADDRESS": "auto"}).ray
    assert ray is not None and ray.address == "auto"
    assert (ray.min_replicas, ray.max_replicas, ray.max_ongoing_requests, ray.diffusion_gpus) == (1, 4, 1, 1.0)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"TOONFORGE_RAY_ADDRESS": "head-node"}, "TOONFORGE_RAY_ADDRESS"),
        ({"TOONFORGE_RAY_ADDRESS": "head:99999"}, "TOONFORGE_RAY_ADDRESS"),
        ({"TOONFORGE_RAY_ADDRESS": "auto", "TOONFORGE_RAY_MAX_REPLICAS": "many"}, "TOONFORGE_RAY_MAX_REPLICAS"),
        ({"TOONFORGE_RAY_ADDRESS": "auto", "TOONFORGE_RAY_MIN_REPLICAS": "5"}, "TOONFORGE_RAY_MIN_REPLICAS"),
        ({"TOONFORGE_RAY_ADDRESS": "auto", "TOONFORGE_RAY_REPLICA_CPUS": "0"}, "TOONFORGE_RAY_REPLICA_CPUS"),
    ],
)
def test_bad_settings_fail_naming_the_variable(env: dict[str, str], names: str):
    with pytest.raises(ValueError, match=names):
        ServiceConfig.from_env(env)


def test_config_is_frozen():
    config = ServiceConfig.from_env({"TOONFORGE_RAY_ADDRESS": "auto"})
    with pytest.raises(AttributeError):
        config.ray.max_replicas = 3  # type: ignore[misc,union-attr]


def test_importing_the_app_imports_no_ray_and_starts_nothing():
    code = (
        "import sys, threading, app\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "print('clean')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "clean", proc.stderr
