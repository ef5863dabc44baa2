"""The Bento's container image, built and pushed by `pulumi up`, deployed by the digest it gets.

`make bento` builds the Bento and exports its image build context (the Bento, its models and
the Dockerfile BentoML generates for it) to `build/images/<name>-<version>/`; this component
builds that context with BuildKit (the `docker-build` provider, which drives the local Docker
engine's buildx), pushes it to the stack's Artifact Registry repository under the Bento version
as tag, and hands back `<repository>/<name>@<digest>`: what the pods run, never a tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from infra.registry import Registry

IMAGE_CONTEXTS = PurePosixPath("../build/images")
"""Where `make bento` exports image build contexts (`build/images/` of the project), relative to
the folder the engine runs the program from: `main` of Pulumi.yaml, this one (pulumi/pulumi
`pkg/engine/project.go`). Relative, so that the image's inputs are the same on every machine."""
DOCKERFILE = "env/docker/Dockerfile"
"""The Dockerfile's place in a Bento's build context, as BentoML writes it."""


def image_resource_name(bento: str) -> str:
    """One image resource per Bento version, named by it, whichever tracks run it."""
    name, version = bento.split(":", 1)
    return f"{name}-{version}"


def image_context(bento: str) -> PurePosixPath:
    """The exported build context of Bento `<name>:<version>`."""
    name, version = bento.split(":", 1)
    return IMAGE_CONTEXTS / f"{name}-{version}"


@dataclass(frozen=True)
class BentoImageArgs:
    bento: str
    """The Bento tag (`moderation:<version>`) whose exported context is built."""
    registry: Registry


class BentoImage(pulumi.ComponentResource):
    """One Bento version as an image in the stack's registry; `ref` pins it by digest."""

    ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: BentoImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("moderation:infra:BentoImage", name, None, opts)
        bento_name, version = args.bento.split(":", 1)
        repository = f"{args.registry.url}/{bento_name}"
        context = image_context(args.bento)
        # Pushes authenticate as whoever runs `pulumi up` (their gcloud credentials' token).
        token = gcp.organizations.get_client_config_output().access_token
        image = docker_build.Image(
            name,
            context=docker_build.BuildContextArgs(location=str(context)),
            dockerfile=docker_build.DockerfileArgs(location=str(context / DOCKERFILE)),
            platforms=[docker_build.Platform.LINUX_AMD64],
            tags=[f"{repository}:{version}"],
            push=True,
            registries=[
                docker_build.RegistryArgs(
                    address=args.registry.url.split("/", 1)[0],
                    username="oauth2accesstoken",
                    password=pulumi.Output.secret(token),
                )
            ],
            # A preview needs no Docker engine: the provider builds only on `pulumi up`, and only
            # when the context's hash or an input changed (pulumi-docker-build `image.go`, Diff).
            build_on_preview=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The push needs the repository; its scan results and admission follow from there.
                depends_on=[args.registry.repository],
                # Deleting the resource would delete the manifest by digest (the provider's
                # Delete), while pods may still run it: the registry's cleanup policy retires
                # old versions instead, and destroy needs no Docker engine.
                retain_on_delete=True,
            ),
        )
        self.ref = pulumi.Output.concat(repository, "@", image.digest)
        self.register_outputs({"ref": self.ref})
