"""What a host runs of archfleet's services, in one command each: platform, managed containers, managed files
(``ServicesState``), and proof of what each container really runs (``ServiceProof``). The command texts and their
pure parsers live in ``facts/service_reads.py`` (importable without pyinfra)."""

from __future__ import annotations

from pyinfra.api import FactBase

from archfleet.facts.service_reads import (
    SERVICE_PROOF_COMMAND,
    SERVICES_STATE_COMMAND,
    ServiceProofValue,
    ServicesStateValue,
    parse_service_proof,
    parse_services_state,
)


class ServicesState(FactBase[ServicesStateValue]):
    """
    One command for everything the services deploy decides on: the host's OCI platform, whether the Docker
    engine answers, each archfleet-managed container (by the ``archfleet.service`` label, including a rollout's
    ``-previous`` container) with its status, spec hash and image digest labels, and the sha256, owner and mode
    of every file archfleet put under /etc/archfleet/services.
    """

    def command(self) -> str:
        return SERVICES_STATE_COMMAND

    def process(self, output: list[str]) -> ServicesStateValue:
        return parse_services_state(output)


class ServiceProof(FactBase[ServiceProofValue]):
    """
    Proof of what each archfleet container really runs: its image's platform as the engine records it, the
    image's repository digests, and what `uname -m` says inside the container; and the free space of the
    filesystem that holds Docker's data root (``df``). Read-only.
    """

    def command(self) -> str:
        return SERVICE_PROOF_COMMAND

    def process(self, output: list[str]) -> ServiceProofValue:
        return parse_service_proof(output)
