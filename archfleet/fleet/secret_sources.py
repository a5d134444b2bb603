"""Where a service's secret comes from besides a file or an environment variable: a program's output
(``command:``), an SSM parameter (``ssm:``, decrypted) or a Secrets Manager secret (``secretsmanager:``).

Each is read when a command needs the value (a sync's plan, ``service info``, ``spot up``), never at load, so ``check``
and the commands that need no secret contact nothing. A value never reaches a log: a failure names the secret and what
failed (the program's exit code or time bound and at most its stderr's last line, unless that line repeats a line of its
output; AWS's error code), never the output. boto3 clients come from boto3's own configuration, as ``archfleet/spot``
builds them: ``AWS_PROFILE``, credentials, ``AWS_ENDPOINT_URL`` (every service) or ``AWS_ENDPOINT_URL_SSM`` /
``AWS_ENDPOINT_URL_SECRETS_MANAGER``; the region is the secret's ``region:``, else ``AWS_REGION``, else boto3's.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from archfleet.errors import InputError, OperationFailed

DEFAULT_COMMAND_TIMEOUT = 30  # seconds
# AWS error codes that mean the fleet file names something that is not there, or access is refused: exit 2.
AWS_INPUT_ERROR_CODES = ("ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException",
                         "AccessDenied", "AccessDeniedException", "UnrecognizedClientException",
                         "InvalidClientTokenId", "ValidationException", "InvalidRequestException",
                         "InvalidParameterException", "DecryptionFailure")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def from_command(argv: list[str], timeout: int, where: str) -> str:
    """The program's stdout, one trailing newline stripped. Run without a shell, stdin closed, under ``timeout``
    seconds (then killed); its stdout is never printed, its stderr only as the last line of a failure."""
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise InputError(f"{where}: command {argv[0]!r} is not found (on PATH)") from None
    except PermissionError:
        raise InputError(f"{where}: command {argv[0]!r} cannot be run (permission denied)") from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{where}: command {argv[0]!r} did not finish in {timeout} s (killed; `timeout:` "
                              "sets the bound)") from None
    if result.returncode != 0:
        said = last_line(result.stderr.decode(errors="replace"))
        printed = {line.strip() for line in result.stdout.decode(errors="replace").splitlines() if line.strip()}
        if any(line in said for line in printed):  # its stderr repeats what it printed (the value, perhaps)
            said = "its last stderr line repeats its output (not shown)"
        status = (f"was killed by signal {-result.returncode}" if result.returncode < 0
                  else f"exited {result.returncode}")
        raise OperationFailed(f"{where}: command {argv[0]!r} {status}" + (f": {said}" if said else ""))
    try:
        value = result.stdout.decode()
    except UnicodeDecodeError:
        raise OperationFailed(f"{where}: command {argv[0]!r} printed bytes that are not UTF-8 text") from None
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise OperationFailed(f"{where}: command {argv[0]!r} printed nothing")
    return value


def aws_client(service: str, region: str | None, where: str) -> Any:
    """A boto3 client of ``service`` ("ssm", "secretsmanager") from boto3's own configuration."""
    import boto3
    import botocore.exceptions

    try:
        session = boto3.session.Session()
    except botocore.exceptions.ProfileNotFound as error:
        raise InputError(f"{where}: AWS: {error}") from None
    chosen = region or os.environ.get("AWS_REGION") or session.region_name
    if not chosen:
        raise InputError(f"{where}: no AWS region: set `region:` on the secret, AWS_REGION or AWS_DEFAULT_REGION")
    if session.get_credentials() is None:
        raise InputError(f"{where}: no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY, or a credentials file")
    return session.client(service, region_name=chosen)  # type: ignore[call-overload]


def _aws_call(service: str, region: str | None, where: str, what: str, call: Any) -> Any:
    import botocore.exceptions

    client = aws_client(service, region, where)
    endpoint = client.meta.endpoint_url
    try:
        return call(client)
    except botocore.exceptions.ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "")) or "error"
        message = " ".join(str(error.response.get("Error", {}).get("Message", "")).split())[:200]
        failure = InputError if code in AWS_INPUT_ERROR_CODES else OperationFailed
        raise failure(f"{where}: {what}: {code}{': ' + message if message else ''} (endpoint {endpoint})") from None
    except botocore.exceptions.NoCredentialsError:
        raise InputError(f"{where}: {what}: no AWS credentials (endpoint {endpoint})") from None
    except botocore.exceptions.BotoCoreError as error:
        raise OperationFailed(f"{where}: {what}: cannot reach {endpoint}: {error}") from None


def from_ssm(name: str, region: str | None, where: str) -> str:
    """An SSM parameter's value (a SecureString decrypted: WithDecryption)."""
    answer = _aws_call("ssm", region, where, f"SSM parameter {name}",
                       lambda client: client.get_parameter(Name=name, WithDecryption=True))
    return str(answer["Parameter"]["Value"])


def from_secretsmanager(secret_id: str, region: str | None, where: str) -> str:
    """A Secrets Manager secret's current SecretString (a binary-only secret is refused)."""
    answer = _aws_call("secretsmanager", region, where, f"Secrets Manager secret {secret_id}",
                       lambda client: client.get_secret_value(SecretId=secret_id))
    if "SecretString" not in answer:
        raise InputError(f"{where}: Secrets Manager secret {secret_id} holds binary data, not a SecretString")
    return str(answer["SecretString"])
