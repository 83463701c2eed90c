"""What every servicer of ``pix2pix local serve`` shares: engine errors mapped to gRPC status codes,
and every RPC outside the served subset answered UNIMPLEMENTED with its full method name.

The generated servicers (python_pachyderm.proto.v2.*_pb2_grpc) already answer UNIMPLEMENTED, but
with "Method not implemented!", which tells a user nothing; :func:`complete` replaces each method a
subclass does not define with one that names itself and points at the README's table.
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from pix2pix.errors import (ClusterError, DataError, JobError, ModelError, Pix2PixError, SpecError,
                            StoreError, UsageError)

SERVED_BY = "pix2pix local serve"

# Message shapes an engine error uses, for the cases its class alone does not settle.
_NOT_FOUND = re.compile(r"\b(not found|does not exist|no such|unknown (repo|branch|commit|pipeline|job|file|datum))\b", re.I)
_EXISTS = re.compile(r"\balready exists?\b", re.I)
_PRECONDITION = re.compile(r"\b(is (already )?(finished|closed|open|not finished|still open)|"
                           r"has (downstream|dependent)|in use|depends on|is an output|output repo)\b", re.I)


def status_for(err: Exception) -> grpc.StatusCode:
    """The gRPC code for an engine error: by its class where the class is precise (or carries a
    ``grpc_code`` / ``kind`` attribute), else by the shape of its message."""
    code = getattr(err, "grpc_code", None)
    if isinstance(code, grpc.StatusCode):
        return code
    kind = str(getattr(err, "kind", "") or "").lower()
    by_kind = {"not_found": grpc.StatusCode.NOT_FOUND, "notfound": grpc.StatusCode.NOT_FOUND,
               "exists": grpc.StatusCode.ALREADY_EXISTS, "already_exists": grpc.StatusCode.ALREADY_EXISTS,
               "precondition": grpc.StatusCode.FAILED_PRECONDITION,
               "invalid": grpc.StatusCode.INVALID_ARGUMENT}
    if kind in by_kind:
        return by_kind[kind]
    name = type(err).__name__.lower()
    if "notfound" in name:
        return grpc.StatusCode.NOT_FOUND
    if "exists" in name:
        return grpc.StatusCode.ALREADY_EXISTS
    msg = str(err)
    if _EXISTS.search(msg):
        return grpc.StatusCode.ALREADY_EXISTS
    if _NOT_FOUND.search(msg):
        return grpc.StatusCode.NOT_FOUND
    if _PRECONDITION.search(msg):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(err, (SpecError, UsageError, DataError, ValueError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(err, (JobError, ModelError)):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(err, StoreError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(err, (ClusterError, Pix2PixError)):
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.INTERNAL


class Abort(Exception):
    """Raised inside a handler to answer with a given code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _abort(context: grpc.ServicerContext, err: Exception) -> None:
    if isinstance(err, Abort):
        context.abort(err.code, str(err))
    if isinstance(err, (Pix2PixError, ValueError, KeyError, FileNotFoundError)):
        msg = str(err) if not isinstance(err, KeyError) else f"not found: {err.args[0] if err.args else err}"
        code = grpc.StatusCode.NOT_FOUND if isinstance(err, (KeyError, FileNotFoundError)) else status_for(err)
        context.abort(code, msg)
    context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")


def handler(fn: Callable) -> Callable:
    """Wrap an RPC method (unary result or generator of results) so engine errors become statuses."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(self, request, context):
            try:
                yield from fn(self, request, context)
            except Exception as e:  # noqa: BLE001 - every failure must reach the client as a status
                if isinstance(e, grpc.RpcError) or _is_abort(e):
                    raise
                _abort(context, e)
        return gen

    @functools.wraps(fn)
    def unary(self, request, context):
        try:
            return fn(self, request, context)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, grpc.RpcError) or _is_abort(e):
                raise
            _abort(context, e)
    return unary


def _is_abort(e: BaseException) -> bool:
    # context.abort() sets the status, then raises a bare Exception() to unwind the handler; it must
    # pass untouched, or a second abort would overwrite the first status.
    return type(e) is Exception and not e.args


def complete(service: ServiceDescriptor, *, others: str | None = None) -> Callable[[type], type]:
    """Class decorator: wrap the methods a servicer defines with :func:`handler`, and answer every
    other method of ``service`` UNIMPLEMENTED, naming it (``/pfs_v2.API/Fsck``), or with the
    message ``others`` where pachd itself answers them all alike."""

    def decorate(cls: type) -> type:
        served = []
        for m in service.methods:
            own = cls.__dict__.get(m.name)
            if own is not None:
                setattr(cls, m.name, handler(own))
                served.append(m.name)
            else:
                setattr(cls, m.name, _unimplemented(f"/{service.full_name}/{m.name}", others))
        cls.SERVED = tuple(served)
        return cls

    return decorate


def _unimplemented(full_name: str, message: str | None = None) -> Callable:
    message = message or (f"{full_name} is not served by `{SERVED_BY}` (it serves the subset "
                          "python-pachyderm 7.6 needs for `pix2pix cluster`; use a real pachd for the rest)")

    def method(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
    method.__name__ = full_name.rsplit("/", 1)[-1]
    return method


def first_line(text: Any) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else ""
