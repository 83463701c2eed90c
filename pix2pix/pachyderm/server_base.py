"""What every servicer of ``pix2pix local serve`` shares: engine errors mapped to gRPC status codes
by their class, and every RPC outside the served subset answered UNIMPLEMENTED with its full
method name.

The generated servicers (python_pachyderm.proto.v2.*_pb2_grpc) already answer UNIMPLEMENTED, but
with "Method not implemented!", which tells a user nothing; :func:`complete` replaces each method a
subclass does not define with one that names itself and points at the README's table.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from pix2pix.errors import Pix2PixError

SERVED_BY = "pix2pix local serve"


class Abort(Exception):
    """Raised inside a handler to answer with a given code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def status_for(err: Exception) -> grpc.StatusCode:
    """The gRPC code for an error, by its class: each engine error class names its code
    (``Pix2PixError.grpc_status``); a few Python errors map as pachd's Go errors would."""
    if isinstance(err, Abort):
        return err.code
    if isinstance(err, Pix2PixError):
        return grpc.StatusCode[err.grpc_status]
    if isinstance(err, (KeyError, FileNotFoundError)):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(err, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, err: Exception) -> None:
    if isinstance(err, KeyError):
        message = f"not found: {err.args[0] if err.args else err}"
    elif isinstance(err, (Abort, Pix2PixError, ValueError, FileNotFoundError)):
        message = str(err)
    else:
        message = f"{type(err).__name__}: {err}"
    context.abort(status_for(err), message)


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
