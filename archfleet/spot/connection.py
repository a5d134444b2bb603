"""boto3 clients (EC2, and SSM for AMI lookups) built from boto3's own configuration, and their errors as
one-line failures naming the endpoint really contacted.

archfleet has no endpoint or credential options of its own: ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` (every service) / ``AWS_ENDPOINT_URL_EC2`` /
``AWS_ENDPOINT_URL_SSM`` and the shared config files all work as they do for any boto3 program. The region is the
fleet's ``region:``, else ``AWS_REGION``, else boto3's (``AWS_DEFAULT_REGION`` or the profile's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from archfleet.errors import InputError, OperationFailed

# Error codes that mean the input (fleet file, account setup) is wrong: exit 2.
INPUT_ERROR_CODES = (
    "InvalidInstanceType", "InvalidAMIID", "InvalidKeyPair", "InvalidGroup", "InvalidSubnetID", "InvalidSubnet",
    "InvalidParameterValue", "InvalidParameter", "AuthFailure", "UnauthorizedOperation", "ParameterNotFound",
    "InvalidClientTokenId", "SignatureDoesNotMatch", "OptInRequired",
)
# Error codes that mean EC2 could not give the capacity asked for: exit 1, said plainly.
CAPACITY_ERROR_CODES = (
    "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity", "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow", "InstanceLimitExceeded", "VcpuLimitExceeded", "Unsupported",
)


@dataclass(frozen=True)
class AwsClient:
    """One service's boto3 client and the endpoint it really talks to (named in every error)."""

    # boto3's client. Typed as Any: the requests are built as plain dicts by archfleet.spot.plan, and the
    # stubs' TypedDicts and instance-type Literals would have to be restated at every call.
    client: Any
    service: str  # "EC2", "SSM": as named in errors
    region: str
    endpoint: str  # client.meta.endpoint_url
    session: boto3.session.Session

    @property
    def note(self) -> str:
        """``(EC2 endpoint URL)``: how an error found in this client's answers names where it came from."""
        return endpoint_note(self.service, self.endpoint)

    def errors(self, action: str) -> AbstractContextManager[None]:
        """Failures of calls inside the block as one-line archfleet errors naming this endpoint."""
        return api_errors(action, self.service, self.endpoint)


def known_regions(session: boto3.session.Session) -> set[str]:
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def connect(region: str | None, where: str = "") -> AwsClient:
    """The EC2 client for a fleet; no credentials or an unknown region is an InputError (nothing was touched)."""
    try:
        session = boto3.session.Session()
    except botocore.exceptions.ProfileNotFound as error:
        raise InputError(f"AWS: {error}") from None
    chosen = region or os.environ.get("AWS_REGION") or session.region_name
    prefix = f"{where}: " if where else ""
    if not chosen:
        raise InputError(f"{prefix}no AWS region: set `region:` in the fleet, AWS_REGION or AWS_DEFAULT_REGION")
    if chosen not in known_regions(session):
        raise InputError(f"{prefix}unknown AWS region {chosen!r}")
    if session.get_credentials() is None:
        raise InputError(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file"
        )
    client = session.client("ec2", region_name=chosen)
    return AwsClient(client=client, service="EC2", region=chosen, endpoint=client.meta.endpoint_url, session=session)


def default_endpoint(session: boto3.session.Session, service: str, region: str) -> str:
    """AWS's own endpoint of a service, as if no endpoint were configured (AWS_ENDPOINT_URL*, profile settings)."""
    # (botocore's stubs lack this Config option and type client() per service name; both are plain at run time)
    make_config: Any = botocore.config.Config
    config = make_config(ignore_configured_endpoint_urls=True)
    make_client: Any = session.client
    return str(make_client(service, region_name=region, config=config).meta.endpoint_url)


def ssm_client(ec2: AwsClient, action: str) -> AwsClient:
    """The SSM client for AMI lookups, never at another endpoint than the user configured.

    boto3 resolves each service's endpoint on its own: ``AWS_ENDPOINT_URL_EC2`` alone moves EC2 only, and SSM
    would silently go to AWS itself. When EC2's endpoint is configured and SSM's is not, this is an InputError
    (nothing contacted) asking for ``AWS_ENDPOINT_URL`` (every service) or ``AWS_ENDPOINT_URL_SSM``.
    """
    client = ec2.session.client("ssm", region_name=ec2.region)
    endpoint = str(client.meta.endpoint_url)
    ec2_configured = ec2.endpoint != default_endpoint(ec2.session, "ec2", ec2.region)
    ssm_configured = endpoint != default_endpoint(ec2.session, "ssm", ec2.region)
    if ec2_configured and not ssm_configured:
        raise InputError(
            f"{action}: the EC2 endpoint is configured ({ec2.endpoint}) but SSM's is not (it would be {endpoint}): "
            "set AWS_ENDPOINT_URL (every service) or AWS_ENDPOINT_URL_SSM"
        )
    return AwsClient(client=client, service="SSM", region=ec2.region, endpoint=endpoint, session=ec2.session)


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: botocore.exceptions.ClientError) -> str:
    return " ".join(str(error.response.get("Error", {}).get("Message", error)).split())


def is_input_error_code(code: str) -> bool:
    return code.startswith(INPUT_ERROR_CODES)


def classify(code: str, message: str, action: str) -> InputError | OperationFailed:
    """One-line failure for an AWS error code: bad input (exit 2), no capacity or anything else (exit 1)."""
    message = " ".join(message.split())
    if code.startswith(CAPACITY_ERROR_CODES):
        return OperationFailed(f"{action}: insufficient spot capacity ({code}): {message}")
    if is_input_error_code(code):
        return InputError(f"{action}: {code}: {message}")
    return OperationFailed(f"{action}: {code or 'error'}: {message}")


def endpoint_note(service: str, endpoint: str) -> str:
    return f"({service} endpoint {endpoint})"


@contextmanager
def api_errors(action: str, service: str, endpoint: str) -> Iterator[None]:
    """Turn boto3/botocore failures inside the block into one-line archfleet errors naming the endpoint:
    bad-input error codes and missing credentials exit 2, anything else (the endpoint unreachable, throttling,
    an internal error, no capacity) exits 1."""
    note = endpoint_note(service, endpoint)
    try:
        yield
    except botocore.exceptions.ClientError as error:
        failure = classify(error_code(error), error_message(error), action)
        raise type(failure)(f"{failure} {note}") from None
    except botocore.exceptions.NoCredentialsError:
        raise InputError(f"{action}: no AWS credentials {note}") from None
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        raise OperationFailed(f"{action}: cannot reach the {service} endpoint {endpoint}: {error}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise OperationFailed(f"{action}: {error} {note}") from None


def tag_filter(key: str, value: str) -> list[Any]:
    return [{"Name": f"tag:{key}", "Values": [value]}]
