"""deploy/kuberay: what can be checked without Kubernetes. The RayService's Serve config is
valid for the installed Ray, its import path and args build Toonforge's application with the
sizes they say, the front ends agree with it, and both files say they are not tested here."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT

ray = pytest.importorskip("ray", reason="Ray mode needs requirements-ray.txt (in requirements-dev.txt)")

KUBERAY = ROOT / "deploy" / "kuberay"


def documents(name: str) -> list[dict]:
    return list(yaml.safe_load_all((KUBERAY / name).read_text(encoding="utf-8")))


def ray_service() -> dict:
    (service,) = [doc for doc in documents("rayservice.yaml") if doc["kind"] == "RayService"]
    return service


def test_the_manifests_say_they_are_not_tested_here():
    for path in KUBERAY.glob("*.yaml"):
        assert path.read_text(encoding="utf-8").startswith("# NOT TESTED HERE"), path.name


def test_the_serve_config_is_valid_and_builds_our_application():
    from ray.serve.schema import ServeDeploySchema
    from ray.serve._private.utils import import_attr

    service = ray_service()
    assert service["apiVersion"] == "ray.io/v1"
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__
    serve_config = ServeDeploySchema.parse_obj(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (app,) = serve_config.applications
    assert app.name == "toonforge"  # the name the front ends look for (TOONFORGE_RAY_APP)
    application = import_attr(app.import_path)(app.args)
    pipeline = application._bound_deployment
    autoscaling = pipeline._deployment_config.autoscaling_config
    assert pipeline.name == "pipeline"
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (
        int(app.args["TOONFORGE_RAY_MIN_REPLICAS"]), int(app.args["TOONFORGE_RAY_MAX_REPLICAS"])
    )
    assert pipeline.ray_actor_options["num_cpus"] == float(app.args["TOONFORGE_RAY_REPLICA_CPUS"])


def test_the_front_ends_size_their_pools_like_the_cluster_and_probe_ready():
    (app,) = yaml.safe_load(ray_service()["spec"]["serveConfigV2"])["applications"]
    (deployment,) = [doc for doc in documents("frontend.yaml") if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["TOONFORGE_RAY_ADDRESS"] == f"{ray_service()['metadata']['name']}-head-svc:6379"
    assert env["TOONFORGE_RAY_MAX_REPLICAS"] == app["args"]["TOONFORGE_RAY_MAX_REPLICAS"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    (front,) = [doc for doc in documents("frontend.yaml") if doc["kind"] == "Service"]
    assert front["spec"]["sessionAffinity"] == "ClientIP"  # Gradio's queue needs sticky sessions
