"""Google's own API definitions as an oracle for the plan: the discovery documents that
`google-api-python-client` ships (field names, enum values, deprecations of every Google API).

Each planned GCP resource is walked alongside the schema of the API resource behind it: every
enum value it sets must be one the API knows and has not deprecated, and no field it sets may be
one the API marks deprecated. Pulumi's inputs follow the API's field names nearly everywhere;
where the provider flattens or renames a field, `ALIASES` says where it lives in the API. Fields
the API does not have (provider-only settings such as `forceDestroy`) are not checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"

# Pulumi type -> (discovery document, schema) of the API resource it creates. None: the type
# sets nothing an API enum or deprecation applies to (IAM bindings name a role and a member; a
# key ring a location; an enabled service its name; a secret version its payload).
API_SCHEMAS: dict[str, tuple[str, str] | None] = {
    "gcp:artifactregistry/repository:Repository": ("artifactregistry.v1", "Repository"),
    "gcp:bigquery/dataset:Dataset": ("bigquery.v2", "Dataset"),
    "gcp:billing/budget:Budget": ("billingbudgets.v1", "GoogleCloudBillingBudgetsV1Budget"),
    "gcp:binaryauthorization/policy:Policy": ("binaryauthorization.v1", "Policy"),
    "gcp:certificatemanager/certificate:Certificate": ("certificatemanager.v1", "Certificate"),
    "gcp:certificatemanager/certificateMap:CertificateMap": (
        "certificatemanager.v1",
        "CertificateMap",
    ),
    "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry": (
        "certificatemanager.v1",
        "CertificateMapEntry",
    ),
    "gcp:certificatemanager/dnsAuthorization:DnsAuthorization": (
        "certificatemanager.v1",
        "DnsAuthorization",
    ),
    "gcp:compute/globalAddress:GlobalAddress": ("compute.v1", "Address"),
    "gcp:compute/network:Network": ("compute.v1", "Network"),
    "gcp:compute/router:Router": ("compute.v1", "Router"),
    "gcp:compute/routerNat:RouterNat": ("compute.v1", "RouterNat"),
    "gcp:compute/sSLPolicy:SSLPolicy": ("compute.v1", "SslPolicy"),
    "gcp:compute/securityPolicy:SecurityPolicy": ("compute.v1", "SecurityPolicy"),
    "gcp:compute/subnetwork:Subnetwork": ("compute.v1", "Subnetwork"),
    "gcp:container/cluster:Cluster": ("container.v1", "Cluster"),
    "gcp:container/nodePool:NodePool": ("container.v1", "NodePool"),
    "gcp:gkehub/feature:Feature": ("gkehub.v1", "Feature"),
    "gcp:gkehub/membership:Membership": ("gkehub.v1", "Membership"),
    "gcp:dns/recordSet:RecordSet": ("dns.v1", "ResourceRecordSet"),
    "gcp:kms/cryptoKey:CryptoKey": ("cloudkms.v1", "CryptoKey"),
    "gcp:logging/metric:Metric": ("logging.v2", "LogMetric"),
    "gcp:logging/projectExclusion:ProjectExclusion": ("logging.v2", "LogExclusion"),
    "gcp:logging/projectSink:ProjectSink": ("logging.v2", "LogSink"),
    "gcp:monitoring/alertPolicy:AlertPolicy": ("monitoring.v3", "AlertPolicy"),
    "gcp:monitoring/customService:CustomService": ("monitoring.v3", "Service"),
    "gcp:monitoring/dashboard:Dashboard": ("monitoring.v1", "Dashboard"),
    "gcp:monitoring/notificationChannel:NotificationChannel": (
        "monitoring.v3",
        "NotificationChannel",
    ),
    "gcp:monitoring/slo:Slo": ("monitoring.v3", "ServiceLevelObjective"),
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": ("monitoring.v3", "UptimeCheckConfig"),
    "gcp:pubsub/subscription:Subscription": ("pubsub.v1", "Subscription"),
    "gcp:pubsub/topic:Topic": ("pubsub.v1", "Topic"),
    "gcp:secretmanager/secret:Secret": ("secretmanager.v1", "Secret"),
    "gcp:serviceaccount/account:Account": ("iam.v1", "ServiceAccount"),
    "gcp:storage/bucket:Bucket": ("storage.v1", "Bucket"),
    "gcp:kms/keyRing:KeyRing": None,
    "gcp:projects/service:Service": None,
    "gcp:secretmanager/secretVersion:SecretVersion": None,
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": None,
    "gcp:bigquery/datasetIamMember:DatasetIamMember": None,
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": None,
    "gcp:projects/iAMMember:IAMMember": None,
    "gcp:pubsub/topicIAMMember:TopicIAMMember": None,
    "gcp:secretmanager/secretIamMember:SecretIamMember": None,
    "gcp:serviceaccount/iAMMember:IAMMember": None,
    "gcp:storage/bucketIAMMember:BucketIAMMember": None,
}

# Where the provider moved an API field: Pulumi input path -> API path (dot-separated).
ALIASES: dict[str, dict[str, str]] = {
    "gcp:container/cluster:Cluster": {
        "datapathProvider": "networkConfig.datapathProvider",
        "gatewayApiConfig": "networkConfig.gatewayApiConfig",
        "loggingConfig.enableComponents": "loggingConfig.componentConfig.enableComponents",
        "monitoringConfig.enableComponents": "monitoringConfig.componentConfig.enableComponents",
        "minMasterVersion": "initialClusterVersion",
        "nodeLocations": "locations",
    },
    "gcp:container/nodePool:NodePool": {"nodeConfig": "config"},
    "gcp:compute/network:Network": {"routingMode": "routingConfig.routingMode"},
    "gcp:storage/bucket:Bucket": {
        "lifecycleRules": "lifecycle.rule",
        "publicAccessPrevention": "iamConfiguration.publicAccessPrevention",
    },
}


@dataclass
class Report:
    """What a walk found: problems, and how much it could check (so that it is not vacuous)."""

    problems: list[str] = field(default_factory=list)
    fields_checked: int = 0
    enums_checked: int = 0


@cache
def document(name: str) -> dict[str, Any]:
    return json.loads((DOCUMENTS / f"{name}.json").read_text())


def _is_deprecated(prop: dict[str, Any]) -> bool:
    return prop.get("deprecated") is True or prop.get("description", "").lower().startswith(
        "deprecated"
    )


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    return schema


def _check(
    doc: dict[str, Any], schema: dict[str, Any], value: Any, path: str, report: Report
) -> None:
    schema = _resolve(doc, schema)
    if "enum" in schema and isinstance(value, str):
        report.enums_checked += 1
        if value not in schema["enum"]:
            report.problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
        elif schema.get("enumDeprecated", [False] * len(schema["enum"]))[
            schema["enum"].index(value)
        ]:
            report.problems.append(f"{path}: {value!r} is deprecated")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(doc, schema["items"], item, f"{path}[{index}]", report)
    elif isinstance(value, list) and "additionalProperties" in schema:
        # A map in the API that the provider takes as a list of entries.
        for index, item in enumerate(value):
            _check(doc, schema["additionalProperties"], item, f"{path}[{index}]", report)
    elif isinstance(value, dict) and "properties" in schema:
        _check_object(doc, schema, value, path, report)


def _check_object(
    doc: dict[str, Any], schema: dict[str, Any], value: dict[str, Any], path: str, report: Report
) -> None:
    properties = schema["properties"]
    for key, item in value.items():
        if key not in properties or item is None:
            continue
        report.fields_checked += 1
        where = f"{path}.{key}" if path else key
        if _is_deprecated(properties[key]):
            report.problems.append(f"{where}: the API marks this field deprecated")
        _check(doc, properties[key], item, where, report)


def _place(inputs: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """The inputs with each aliased field moved to where the API has it."""
    moved = json.loads(json.dumps(inputs))
    for source, target in aliases.items():
        *parents, leaf = source.split(".")
        holder = moved
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or leaf not in holder:
            continue
        item = holder.pop(leaf)
        *target_parents, target_leaf = target.split(".")
        destination = moved
        for part in target_parents:
            destination = destination.setdefault(part, {})
        destination[target_leaf] = item
    return moved


def check_resource(resource: dict[str, Any]) -> Report:
    """Walk one planned resource against its API's schema."""
    report = Report()
    target = API_SCHEMAS[resource["type"]]
    if target is None:
        return report
    doc = document(target[0])
    inputs = _place(resource["inputs"], ALIASES.get(resource["type"], {}))
    if resource["type"] == "gcp:monitoring/dashboard:Dashboard":
        inputs = json.loads(inputs["dashboardJson"])
    _check_object(doc, doc["schemas"][target[1]], inputs, "", report)
    return report
