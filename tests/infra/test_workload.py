"""The Bento's Kubernetes objects: pod hardening, probes, rollout, scaling, network isolation."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

import pytest

from infra.observability.metrics_adapter import NAME, NAMESPACE
from tests.infra.network_policy import Peer, allows, pod
from tests.infra.plans import Plan, region_networks, stack_config

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
APP_SELECTOR = {"app.kubernetes.io/name": "moderation"}


def _model_deployments_by_region(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """The Bento's Deployments (one per release track) in each serving region's cluster."""
    found = {
        region: [
            d["inputs"]
            for d in deployments
            if d["inputs"]["spec"]["selector"]["matchLabels"].items() >= APP_SELECTOR.items()
        ]
        for region, deployments in plan.in_each_region(DEPLOYMENT).items()
    }
    missing = [region for region, deployments in found.items() if not deployments]
    assert not missing, f"no Deployment of the Bento in {missing}"
    return found


def _model_deployments(plan: Plan) -> list[dict[str, Any]]:
    """The Bento's Deployments of every region (each region has at least one)."""
    return [d for deployments in _model_deployments_by_region(plan).values() for d in deployments]


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def test_pods_run_non_root_read_only_without_capabilities(plan: Plan) -> None:
    for deployment in _model_deployments(plan):
        pod = _pod(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            # Whatever must be written goes to a mounted volume, not the read-only root.
            writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert any(env["XDG_CACHE_HOME"].startswith(f"{path}/") for path in writable)
            assert env["HF_HUB_OFFLINE"] == "1"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security.get("privileged") is not True


def test_namespace_enforces_the_restricted_pod_security_standard(plan: Plan) -> None:
    for region, namespace in plan.kubernetes_object_in_each_region(
        "Namespace", "moderation"
    ).items():
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", region


def test_probes_use_the_health_endpoints(plan: Plan) -> None:
    for deployment in _model_deployments(plan):
        for container in _pod(deployment)["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
            startup = container["startupProbe"]
            # Model loading gets minutes before liveness may restart the pod.
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_resources_are_bounded_and_memory_is_guaranteed(plan: Plan) -> None:
    for deployment in _model_deployments(plan):
        for container in _pod(deployment)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys()
            assert {"cpu", "memory"} <= resources["limits"].keys()
            # A pod that may use more memory than it requested is the first one OOM-killed.
            assert resources["limits"]["memory"] == resources["requests"]["memory"]


def test_images_are_pinned_by_digest(plan: Plan) -> None:
    for deployment in _model_deployments(plan):
        for container in _pod(deployment)["containers"]:
            assert "@sha256:" in container["image"]
    stable = next(d for d in _model_deployments(plan) if d["metadata"]["name"].endswith("stable"))
    assert _pod(stable)["containers"][0]["image"] == plan.outputs["image"]


def test_rollout_never_drops_below_capacity_and_drains_gracefully(plan: Plan) -> None:
    for deployment in _model_deployments(plan):
        spec = deployment["spec"]
        assert "replicas" not in spec, "the HPA owns the replica count"
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        pod = _pod(deployment)
        sleep = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert 0 < sleep < pod["terminationGracePeriodSeconds"]


def test_a_request_accepted_before_sigterm_ends_within_the_grace_period(plan: Plan) -> None:
    """preStop, then the longest request the edge allows, then exiting: all before SIGKILL.

    The service's own timeout is set from the edge's, a little shorter, so that its 503 reaches
    the client first; the queue bounds come from the stack.
    """
    config = stack_config(plan.stack)
    edge_timeout = config["moderation:edge"]["backendTimeoutSec"]
    queue = config["moderation:workload"].get("queue", {})
    for deployment in _model_deployments(plan):
        pod = _pod(deployment)
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        service_timeout = int(env["MODERATION_REQUEST_TIMEOUT_S"])
        assert 0 < service_timeout < edge_timeout
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop + edge_timeout + 5 <= pod["terminationGracePeriodSeconds"]
        assert env["MODERATION_MAX_QUEUED_REQUESTS"] == str(queue.get("maxRequests", 256))
        assert env["MODERATION_MAX_QUEUED_TEXTS"] == str(queue.get("maxTexts", 4096))


def test_pods_spread_over_zones_on_the_tainted_model_pool(plan: Plan) -> None:
    for deployment in _model_deployments(plan):
        pod = _pod(deployment)
        keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
        assert "topology.kubernetes.io/zone" in keys
        assert pod["nodeSelector"] == {"moderation.dev/pool": "model"}
        assert {
            "key": "moderation.dev/pool",
            "operator": "Equal",
            "value": "model",
            "effect": "NoSchedule",
        } in pod["tolerations"]


def test_autoscaler_bounds_come_from_the_stack(plan: Plan) -> None:
    scaling = stack_config(plan.stack)["moderation:workload"]["autoscaling"]
    for hpa in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"):
        spec = hpa["inputs"]["spec"]
        assert spec["minReplicas"] == scaling["minReplicas"]
        assert spec["maxReplicas"] == scaling["maxReplicas"]
        metric_types = [metric["type"] for metric in spec["metrics"]]
        assert "Resource" in metric_types  # CPU is always there as the fallback
        assert ("Pods" in metric_types) == ("targetInFlightRequests" in scaling)


def test_autoscaler_serving_signal_is_the_moderation_in_flight_gauge(plan: Plan) -> None:
    """Not BentoML's request_in_progress, which also counts probes and the scorer's calls."""
    pods_metrics = [
        metric["pods"]
        for hpa in plan.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
        for metric in hpa["inputs"]["spec"]["metrics"]
        if metric["type"] == "Pods"
    ]
    for pods in pods_metrics:
        assert pods["metric"]["name"] == (
            "prometheus.googleapis.com|moderation_requests_in_flight|gauge"
        )
        assert pods["target"]["type"] == "AverageValue"


def _specs(plan: Plan, resource_type: str, region: str) -> list[dict[str, Any]]:
    """The specs of a type's Kubernetes objects in one region's cluster."""
    return [r["inputs"]["spec"] for r in plan.in_each_region(resource_type)[region]]


def test_every_deployment_has_a_service_hpa_and_pdb_in_its_own_cluster(plan: Plan) -> None:
    for region, deployments in _model_deployments_by_region(plan).items():
        for deployment in deployments:
            name, selector = (
                deployment["metadata"]["name"],
                deployment["spec"]["selector"]["matchLabels"],
            )
            services = [
                spec for spec in _specs(plan, SERVICE, region) if spec.get("selector") == selector
            ]
            assert len(services) == 1, (region, name)
            targets = [spec["scaleTargetRef"]["name"] for spec in _specs(plan, HPA, region)]
            assert targets.count(name) == 1, (region, name)
            budgets = [
                spec
                for spec in _specs(plan, PDB, region)
                if spec["selector"]["matchLabels"] == selector
            ]
            assert len(budgets) == 1, (region, name)


def disruptions_allowed(budget: dict[str, Any], healthy_pods: int) -> int:
    """How many pods an eviction may take now, as Kubernetes' disruption controller counts.

    Integers are pod counts; percentages of the pod count round up, for both fields.
    """
    (field,) = {"minAvailable", "maxUnavailable"} & budget.keys()  # exactly one of them

    def pods(value: int | str) -> int:
        if isinstance(value, int):
            return value
        return math.ceil(int(value.removesuffix("%")) * healthy_pods / 100)

    if field == "maxUnavailable":
        return pods(budget[field])
    return max(healthy_pods - pods(budget[field]), 0)


def test_disruption_budget_lets_drains_evict_one_pod_at_a_time_at_every_scale(plan: Plan) -> None:
    """A node drain (upgrade, scale-down) never blocks, even at one replica, nor takes two pods."""
    for region, deployments in _model_deployments_by_region(plan).items():
        for deployment in deployments:
            name = deployment["metadata"]["name"]
            selector = deployment["spec"]["selector"]["matchLabels"]
            (budget,) = [
                spec
                for spec in _specs(plan, PDB, region)
                if spec["selector"]["matchLabels"] == selector
            ]
            (scaling,) = [
                spec for spec in _specs(plan, HPA, region) if spec["scaleTargetRef"]["name"] == name
            ]
            for replicas in range(scaling["minReplicas"], scaling["maxReplicas"] + 1):
                assert disruptions_allowed(budget, replicas) == 1, (region, name, replicas)


def _model_network_policies(plan: Plan) -> dict[str, dict[str, Any]]:
    """The model pods' NetworkPolicy in each region's cluster."""
    policies = plan.kubernetes_object_in_each_region("NetworkPolicy", "moderation", "moderation")
    for policy in policies.values():
        # It must apply to the model pods, and filter both directions.
        assert policy["spec"]["podSelector"]["matchLabels"] == APP_SELECTOR
    return policies


@pytest.mark.parametrize(
    ("peer", "admitted"),
    [
        (Peer("35.191.12.34", 3000), True),  # Google Front End / health checkers
        (Peer("130.211.0.9", 3000), True),
        (pod("gmp-system", 3000, app="collector"), True),  # Managed Prometheus scrapes
        (Peer("35.191.12.34", 22), False),  # only the serving port
        (Peer("203.0.113.9", 3000), False),  # the internet, around the load balancer
        (pod("payments", 3000), False),  # other workloads in the cluster
        (pod("kube-system", 3000), False),
    ],
)
def test_network_policy_admits_only_load_balancers_and_metrics_scrapes(
    plan: Plan, peer: Peer, admitted: bool
) -> None:
    for region, policy in _model_network_policies(plan).items():
        assert allows(policy, "ingress", peer) is admitted, region


@pytest.mark.parametrize(
    ("peer", "admitted"),
    [
        (pod("kube-system", 53, "UDP", **{"k8s-app": "kube-dns"}), True),
        (pod("kube-system", 53, "TCP", **{"k8s-app": "kube-dns"}), True),
        (Peer("169.254.20.10", 53, "UDP"), True),  # NodeLocal DNSCache
        (Peer("169.254.169.254", 53, "UDP"), True),  # Cloud DNS through the metadata server
        (Peer("169.254.169.254", 80), True),  # GKE metadata server: Workload Identity tokens
        (Peer("169.254.169.252", 988), True),
        # Nothing else leaves a model pod: no internet, no Google APIs, no other pods.
        (Peer("142.250.74.10", 443), False),
        (Peer("199.36.153.8", 443), False),  # private.googleapis.com
        (Peer("10.30.0.1", 443), False),  # the Kubernetes API service
        (Peer("169.254.169.254", 443), False),
        (pod("kube-system", 443), False),
        (pod("payments", 3000), False),
    ],
)
def test_model_pods_reach_only_dns_and_the_metadata_server(
    plan: Plan, peer: Peer, admitted: bool
) -> None:
    """Models are in the image, keys come through the CSI driver, logs go to stdout."""
    for region, policy in _model_network_policies(plan).items():
        assert allows(policy, "egress", peer) is admitted, region


def test_the_metrics_adapter_is_isolated_too(plan: Plan) -> None:
    """Each region's adapter admits its own cluster's control plane (ranges differ by region)."""
    networks = region_networks(stack_config(plan.stack))
    for region, policy in plan.kubernetes_object_in_each_region(
        "NetworkPolicy", NAME, NAMESPACE
    ).items():
        control_plane = networks[region]["masterCidr"]
        first_address = str(next(ipaddress.IPv4Network(control_plane).hosts()))
        assert allows(policy, "ingress", Peer(first_address, 443)), region
        assert allows(policy, "ingress", pod("kube-system", 443, **{"k8s-app": "konnectivity"}))
        assert not allows(policy, "ingress", Peer("203.0.113.9", 443)), region
        assert not allows(policy, "ingress", pod("moderation", 443)), region
        assert allows(policy, "egress", Peer("142.250.74.10", 443)), region  # Cloud Monitoring
        assert not allows(policy, "egress", Peer("142.250.74.10", 80)), region


def test_the_policy_evaluator_is_not_vacuous() -> None:
    """An allow-all egress rule (what the pods had) admits the internet."""
    open_egress = {
        "metadata": {"namespace": "moderation"},
        "spec": {"policyTypes": ["Egress"], "egress": [{"ports": [{"port": 443}]}]},
    }
    assert allows(open_egress, "egress", Peer("142.250.74.10", 443))
    assert not allows(open_egress, "egress", Peer("142.250.74.10", 80))
    assert not allows({**open_egress, "spec": {"policyTypes": ["Egress"]}}, "egress", pod("x", 1))


def test_request_logs_can_name_the_projects_trace(plan: Plan) -> None:
    """`logging.googleapis.com/trace` is `projects/<id>/traces/<trace>`: the pods need the id."""
    project = stack_config(plan.stack)["gcp:project"]
    for deployment in _model_deployments(plan):
        for container in _pod(deployment)["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["GOOGLE_CLOUD_PROJECT"] == project


def test_workload_identity_binds_the_kubernetes_account_to_the_gcp_account(plan: Plan) -> None:
    """In each region, the pods' Kubernetes account is bound to that region's GCP account."""
    project = plan.outputs["registryUrl"].split("/")[1]
    accounts = plan.kubernetes_object_in_each_region("ServiceAccount", "moderation", "moderation")
    gcp_accounts = plan.each_region("gcp:serviceaccount/account:Account", "moderation-gsa")
    bindings = plan.each_region(
        "gcp:serviceaccount/iAMMember:IAMMember", "moderation-workload-identity"
    )
    deployments = _model_deployments_by_region(plan)
    assert (
        accounts[plan.regions[0]]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        == plan.outputs["workloadServiceAccount"]
    )
    for region, account in accounts.items():
        email = f"{gcp_accounts[region]['inputs']['accountId']}@{project}.iam.gserviceaccount.com"
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == email
        namespace, name = account["metadata"]["namespace"], account["metadata"]["name"]
        binding = bindings[region]["inputs"]
        assert binding["role"] == "roles/iam.workloadIdentityUser"
        assert binding["member"] == f"serviceAccount:{project}.svc.id.goog[{namespace}/{name}]"
        assert binding["serviceAccountId"] == f"projects/{project}/serviceAccounts/{email}"
        for deployment in deployments[region]:
            assert _pod(deployment)["serviceAccountName"] == name, region


def test_managed_prometheus_scrapes_metrics(plan: Plan) -> None:
    scrapes = plan.each_region("kubernetes:monitoring.googleapis.com/v1:PodMonitoring")
    for region, monitoring in scrapes.items():
        spec = monitoring["inputs"]["spec"]
        assert spec["selector"]["matchLabels"] == APP_SELECTOR, region
        assert spec["endpoints"][0]["path"] == "/metrics", region


def test_the_per_key_rate_limit_comes_from_the_stack(plan: Plan) -> None:
    """The authoritative per-key limit is the service's, set per stack (docs/security.md)."""
    limit = stack_config(plan.stack)["moderation:workload"]["keyRateLimit"]
    for deployment in _model_deployments(plan):
        (container,) = _pod(deployment)["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["MODERATION_KEY_REQUESTS_PER_MINUTE"] == str(limit["requestsPerMinute"])
        assert env["MODERATION_KEY_BURST"] == str(limit["burst"])
        assert env["MODERATION_KEY_CHARS_PER_MINUTE"] == str(limit["charactersPerMinute"])


def test_inference_threads_are_the_whole_cores_the_pod_requests(plan: Plan) -> None:
    requested = float(stack_config(plan.stack)["moderation:workload"]["resources"]["cpuRequest"])
    for deployment in _model_deployments(plan):
        for container in _pod(deployment)["containers"]:
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert env["MODERATION_INFERENCE_THREADS"] == str(max(int(requested), 1))
