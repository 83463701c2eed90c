"""Connecting to pachd with python-pachyderm 7.6, and turning gRPC failures into one clear line.

Where the address comes from, first match wins:

1. ``--pachd-address grpc://host:port`` (or ``$PACHD_ADDRESS``);
2. the pachctl config python-pachyderm reads: ``$PACH_CONFIG``, else ``~/.pachyderm/config.json``
   (its active context's ``pachd_address``, ``session_token`` and ``server_cas``);
3. ``grpc://localhost:30650``, where ``pachctl port-forward`` and ``pix2pix local serve`` listen.

Every call into the cluster runs inside :func:`rpc`, which maps a ``grpc.RpcError`` (python-pachyderm
sometimes wraps it in a ``ConnectionError``) to a :class:`~pix2pix.errors.ClusterError` by status
code, naming the address, the object and what to do next.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
import python_pachyderm
from python_pachyderm.client import ConfigError

from pix2pix.errors import ClusterError, UsageError

DEFAULT_ADDRESS = "grpc://localhost:30650"


@dataclass
class Cluster:
    """A connected client and the address it talks to (for messages)."""

    client: python_pachyderm.Client
    address: str

    @contextlib.contextmanager
    def rpc(self, what: str) -> Iterator[None]:
        """Run calls about ``what`` (e.g. "repo 'training'"); failures become one ClusterError."""
        with rpc(self.address, what):
            yield


def config_path() -> Path | None:
    """The pachctl config python-pachyderm would read, or None when there is none."""
    env = os.environ.get(python_pachyderm.Client.env_config)
    if env:
        return Path(env)
    local = Path(python_pachyderm.Client.local_config)
    return local if local.is_file() else None


def connect(pachd_address: str | None = None) -> Cluster:
    """A client for ``pachd_address``, else for the pachctl config, else localhost:30650.

    No call is made here (gRPC connects lazily); the first call reports an unreachable address.
    """
    if pachd_address:
        try:
            client = python_pachyderm.Client.new_from_pachd_address(pachd_address)
        except ValueError as e:
            raise UsageError(f"--pachd-address {pachd_address!r}: {e}; expected grpc://host:port") from None
        return Cluster(client=client, address=client.address)
    path = config_path()
    if path is not None:
        try:
            with open(path) as f:
                client = python_pachyderm.Client.new_from_config(f)
        except FileNotFoundError:
            raise ClusterError(f"pachctl config {path} (from $PACH_CONFIG) does not exist; "
                               "fix $PACH_CONFIG or pass --pachd-address") from None
        except (OSError, ValueError, KeyError, ConfigError) as e:
            # json.JSONDecodeError is a ValueError; BadClusterDeploymentID is a ConfigError.
            raise ClusterError(f"pachctl config {path}: {e}; fix it (`pachctl config get context`) "
                               "or pass --pachd-address") from None
        except (grpc.RpcError, ConnectionError) as e:
            # new_from_config checks the deployment ID when the context names one.
            raise translate(e, _config_address(path), "the cluster named in the pachctl config") from None
        return Cluster(client=client, address=client.address)
    client = python_pachyderm.Client(host="localhost", port=30650, use_default_host=False)
    return Cluster(client=client, address=client.address)


def _config_address(path: Path) -> str:
    try:
        ctx = python_pachyderm.Client._get_active_context(json.loads(path.read_text()))
        return ctx.get("pachd_address") or DEFAULT_ADDRESS
    except Exception:  # only used to word a message
        return str(path)


def rpc_error(err: BaseException) -> grpc.RpcError | None:
    """The ``grpc.RpcError`` behind ``err``: python-pachyderm raises ``ConnectionError`` from it
    for an unreachable address and for any failure on the first message of ``get_file``."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, grpc.RpcError):
            return err
        err = err.__cause__ or err.__context__
        seen += 1
    return None


def _details(err: grpc.RpcError) -> str:
    details = err.details() if hasattr(err, "details") else str(err)
    return (details or "").strip().splitlines()[0] if details else ""


def translate(err: BaseException, address: str, what: str) -> ClusterError:
    """One ClusterError line for a failed call about ``what`` on pachd at ``address``."""
    rpc_err = rpc_error(err)
    if rpc_err is None or not hasattr(rpc_err, "code"):
        return ClusterError(f"{what} on pachd at {address}: {err}")
    code, details = rpc_err.code(), _details(rpc_err)
    G = grpc.StatusCode
    if code == G.UNAVAILABLE:
        return ClusterError(
            f"cannot reach pachd at {address} ({details}); start it (`pachctl port-forward`, or "
            "`pix2pix local serve`) or point --pachd-address / $PACHD_ADDRESS at it")
    if code == G.UNAUTHENTICATED:
        return ClusterError(
            f"pachd at {address} refused us for {what}: not logged in or the token expired "
            f"({details}); run `pachctl auth login` or set $PACH_PYTHON_AUTH_TOKEN")
    if code == G.PERMISSION_DENIED:
        return ClusterError(
            f"pachd at {address} denied access to {what} ({details}); ask a cluster admin for a role "
            "on it (`pachctl auth set ...`)")
    if code == G.NOT_FOUND:
        return ClusterError(f"{what} not found on pachd at {address} ({details}); "
                            "check the name (`pachctl list repo`, `pachctl list pipeline`)")
    if code == G.ALREADY_EXISTS:
        return ClusterError(f"{what} already exists on pachd at {address} ({details})")
    if code == G.UNIMPLEMENTED:
        return ClusterError(f"pachd at {address} does not serve the call for {what} ({details}); "
                            "use a Pachyderm 2.x cluster for it")
    if code == G.DEADLINE_EXCEEDED:
        return ClusterError(f"pachd at {address} timed out on {what} ({details}); try again")
    if code in (G.INVALID_ARGUMENT, G.FAILED_PRECONDITION, G.OUT_OF_RANGE):
        return ClusterError(f"pachd at {address} rejected {what}: {details}")
    if code == G.CANCELLED:
        return ClusterError(f"{what} on pachd at {address} was cancelled ({details})")
    return ClusterError(f"{what} on pachd at {address} failed: {code.name} {details}")


@contextlib.contextmanager
def rpc(address: str, what: str) -> Iterator[None]:
    """Context manager: a gRPC failure inside becomes one ClusterError (see :func:`translate`).

    Streams from python-pachyderm are lazy, so consume them (``list(...)``) inside the block.
    """
    try:
        yield
    except (grpc.RpcError, ConnectionError) as e:
        raise translate(e, address, what) from None
