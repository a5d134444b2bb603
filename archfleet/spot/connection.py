"""A boto3 EC2 client built from boto3's own configuration, and EC2 errors as one-line failures.

archfleet has no endpoint or credential options of its own: ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_EC2`` and the shared config files all work
as they do for any boto3 program. The region is the fleet's ``region:``, else ``AWS_REGION``, else boto3's
(``AWS_DEFAULT_REGION`` or the profile's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
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
class Ec2:
    # boto3's EC2 client. Typed as Any: the requests are built as plain dicts by archfleet.spot.plan, and the
    # stubs' TypedDicts and instance-type Literals would have to be restated at every call.
    client: Any
    region: str
    endpoint: str


def known_regions(session: boto3.session.Session) -> set[str]:
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def connect(region: str | None, where: str = "") -> Ec2:
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
    return Ec2(client=client, region=chosen, endpoint=client.meta.endpoint_url)


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def classify(code: str, message: str, action: str) -> InputError | OperationFailed:
    """One-line failure for an EC2 error code: bad input (exit 2), no capacity or anything else (exit 1)."""
    message = " ".join(message.split())
    if code.startswith(CAPACITY_ERROR_CODES):
        return OperationFailed(f"{action}: insufficient spot capacity ({code}): {message}")
    if code.startswith(INPUT_ERROR_CODES):
        return InputError(f"{action}: {code}: {message}")
    return OperationFailed(f"{action}: {code or 'error'}: {message}")


@contextmanager
def ec2_errors(action: str) -> Iterator[None]:
    """Turn boto3/botocore failures inside the block into one-line archfleet errors."""
    try:
        yield
    except botocore.exceptions.ClientError as error:
        raise classify(error_code(error), str(error.response.get("Error", {}).get("Message", error)), action) from None
    except botocore.exceptions.NoCredentialsError:
        raise InputError(f"{action}: no AWS credentials") from None
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as error:
        raise OperationFailed(f"{action}: cannot reach the EC2 endpoint: {error}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise OperationFailed(f"{action}: {error}") from None


def tag_filter(key: str, value: str) -> list[Any]:
    return [{"Name": f"tag:{key}", "Values": [value]}]
