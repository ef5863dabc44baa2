"""The stable public address of the API: a global static IP and a Google-managed certificate.

The certificate is issued through Certificate Manager with DNS authorization, so it can be
provisioned before any traffic reaches the load balancer and renews without downtime. When a
Cloud DNS managed zone is configured, the program also writes the records (an A record per
domain, and the CNAME each DNS authorization asks for); otherwise add them at your DNS provider
from the `address` and `dns_authorization_records` outputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import EdgeConfig

GCP_NAME_MAX = 63
DNS_TTL_SECONDS = 300


@dataclass(frozen=True)
class PublicEndpointArgs:
    """The stack's `edge` section: its `domains` are served by one certificate, and its
    `dnsManagedZone` (a Cloud DNS zone of the project), if set, gets their records. Names derive
    from `resource_prefix`."""

    config: EdgeConfig
    resource_prefix: str
    labels: Mapping[str, str]


def gcp_name(*parts: str) -> str:
    """A GCP resource name (lowercase, dashes, at most 63 characters) from name parts."""
    joined = "-".join(part.lower().replace(".", "-") for part in parts)
    return joined[:GCP_NAME_MAX].rstrip("-")


def certificate_name(resource_prefix: str, domains: Sequence[str]) -> str:
    """Named after its domains: Certificate Manager cannot change `managed` in place, so a new
    domain list replaces the certificate, and Pulumi creates the new one before deleting the old
    one: under a fixed name that create would fail with 409 (already exists)."""
    digest = hashlib.sha256(",".join(sorted(domains)).encode()).hexdigest()[:8]
    return gcp_name(resource_prefix, "api-cert", digest)


class PublicEndpoint(pulumi.ComponentResource):
    """Static IP, DNS authorizations, managed certificate, certificate map and its entries."""

    address: pulumi.Output[str]
    address_name: pulumi.Output[str]
    certificate_map_name: pulumi.Output[str]
    dns_authorization_records: pulumi.Output[list[dict[str, str]]]

    def __init__(
        self, name: str, args: PublicEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:edge:PublicEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = dict(args.labels)

        address = gcp.compute.GlobalAddress(
            f"{name}-ip",
            name=gcp_name(args.resource_prefix, "edge-ip"),
            description="Stable public address of the moderation API",
            address_type="EXTERNAL",
            ip_version="IPV4",
            labels=labels,
            opts=child,
        )
        authorizations = [
            gcp.certificatemanager.DnsAuthorization(
                f"{name}-auth-{domain}",
                name=gcp_name(args.resource_prefix, domain),
                domain=domain,
                description=f"Proves control of {domain} for the managed certificate",
                labels=labels,
                opts=child,
            )
            for domain in args.config.domains
        ]
        certificate = gcp.certificatemanager.Certificate(
            f"{name}-cert",
            name=certificate_name(args.resource_prefix, args.config.domains),
            description="Google-managed certificate of the moderation API",
            scope="DEFAULT",
            managed=gcp.certificatemanager.CertificateManagedArgs(
                domains=list(args.config.domains),
                dns_authorizations=[auth.id for auth in authorizations],
            ),
            labels=labels,
            opts=child,
        )
        certificate_map = gcp.certificatemanager.CertificateMap(
            f"{name}-certmap",
            name=gcp_name(args.resource_prefix, "certmap"),
            description="Certificate map referenced by the Gateway",
            labels=labels,
            opts=child,
        )
        for domain in args.config.domains:
            gcp.certificatemanager.CertificateMapEntry(
                f"{name}-certmap-{domain}",
                name=gcp_name(args.resource_prefix, domain),
                map=certificate_map.name,
                hostname=domain,
                certificates=[certificate.id],
                labels=labels,
                opts=child,
            )

        if args.config.dns_managed_zone is not None:
            self._write_dns_records(name, args, address, authorizations, child)

        self.address = address.address
        self.address_name = address.name
        self.certificate_map_name = certificate_map.name
        self.dns_authorization_records = pulumi.Output.all(
            *(auth.dns_resource_records for auth in authorizations)
        ).apply(
            lambda groups: [
                {"name": record["name"], "type": record["type"], "data": record["data"]}
                for records in groups
                for record in records or []
            ]
        )
        self.register_outputs(
            {
                "address": self.address,
                "address_name": self.address_name,
                "certificate_map_name": self.certificate_map_name,
                "dns_authorization_records": self.dns_authorization_records,
            }
        )

    @staticmethod
    def _write_dns_records(
        name: str,
        args: PublicEndpointArgs,
        address: gcp.compute.GlobalAddress,
        authorizations: Sequence[gcp.certificatemanager.DnsAuthorization],
        child: pulumi.ResourceOptions,
    ) -> None:
        for domain, auth in zip(args.config.domains, authorizations, strict=True):
            gcp.dns.RecordSet(
                f"{name}-a-{domain}",
                managed_zone=args.config.dns_managed_zone,
                name=f"{domain}.",
                type="A",
                ttl=DNS_TTL_SECONDS,
                rrdatas=[address.address],
                opts=child,
            )
            gcp.dns.RecordSet(
                f"{name}-acme-{domain}",
                managed_zone=args.config.dns_managed_zone,
                name=f"_acme-challenge.{domain}.",
                type="CNAME",
                ttl=DNS_TTL_SECONDS,
                rrdatas=auth.dns_resource_records.apply(
                    lambda records: [record["data"] for record in records or []]
                ),
                opts=child,
            )
