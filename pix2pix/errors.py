"""One exception base for the package; exit codes and gRPC status codes come from the class.

Every message names the file, field or object at fault and, where it helps, what to do next.
``exit_code`` is what the ``pix2pix`` command exits with; ``grpc_status`` is the name of the
``grpc.StatusCode`` that ``pix2pix local serve`` answers with (a name, so this module does not
import grpc). Subclasses narrow a class without changing its exit code::

    Pix2PixError (1, UNKNOWN)
    ├── UsageError (2, INVALID_ARGUMENT)
    ├── DataError (3, INVALID_ARGUMENT)
    ├── ModelError (4, FAILED_PRECONDITION)
    ├── SpecError (5, INVALID_ARGUMENT)
    │   └── MissingInputError (NOT_FOUND)      an input repo that does not exist
    ├── StoreError (6, FAILED_PRECONDITION)
    │   ├── NotFoundError (NOT_FOUND)          a repo, branch, commit, file, pipeline, job...
    │   ├── AlreadyExistsError (ALREADY_EXISTS)
    │   ├── PreconditionError (FAILED_PRECONDITION)  exists, but not in a state that allows it
    │   │   └── NotAFileError                  a folder where a file is needed
    │   ├── ConflictError (ABORTED)            two writes that cannot both hold
    │   ├── StoreFullError (RESOURCE_EXHAUSTED)
    │   └── StoreBusyError (UNAVAILABLE)
    ├── JobError (7, FAILED_PRECONDITION)
    └── ClusterError (8, UNKNOWN)
"""


class Pix2PixError(Exception):
    """Base of every error a user can cause. Printed as one line, never as a traceback."""

    exit_code = 1
    grpc_status = "UNKNOWN"


class UsageError(Pix2PixError):
    """Options that are missing, contradict each other or contradict a checkpoint."""

    exit_code = 2
    grpc_status = "INVALID_ARGUMENT"


class DataError(Pix2PixError):
    """An input file or folder that cannot be used (missing, empty, undecodable)."""

    exit_code = 3
    grpc_status = "INVALID_ARGUMENT"


class ModelError(Pix2PixError):
    """A checkpoint or exported model that is missing, corrupt or incompatible."""

    exit_code = 4
    grpc_status = "FAILED_PRECONDITION"


class SpecError(Pix2PixError):
    """A pipeline spec that is malformed or refers to something that does not exist."""

    exit_code = 5
    grpc_status = "INVALID_ARGUMENT"


class MissingInputError(SpecError):
    """A spec whose input repo does not exist (pachd answers NOT_FOUND)."""

    grpc_status = "NOT_FOUND"


class StoreError(Pix2PixError):
    """A repo, branch, commit or file that does not exist, or a store that cannot be written."""

    exit_code = 6
    grpc_status = "FAILED_PRECONDITION"


class NotFoundError(StoreError):
    """The named repo, branch, commit, file, pipeline, job or datum does not exist."""

    grpc_status = "NOT_FOUND"


class AlreadyExistsError(StoreError):
    """Something of that name exists already."""

    grpc_status = "ALREADY_EXISTS"


class PreconditionError(StoreError):
    """It exists, but its state does not allow the operation (a finished commit, a repo that
    pipelines read, a pipeline's output repo)."""

    grpc_status = "FAILED_PRECONDITION"


class NotAFileError(PreconditionError):
    """A path that is a folder where a file is needed (``get file`` without ``-r``)."""


class ConflictError(StoreError):
    """Two writes that cannot both hold (a path that is a file and a folder)."""

    grpc_status = "ABORTED"


class StoreFullError(StoreError):
    """The disk under the state folder is full."""

    grpc_status = "RESOURCE_EXHAUSTED"


class StoreBusyError(StoreError):
    """Another process held the store for longer than the busy timeout."""

    grpc_status = "UNAVAILABLE"


class JobError(Pix2PixError):
    """A pipeline job that failed (a datum exhausted its tries, or outputs collided)."""

    exit_code = 7
    grpc_status = "FAILED_PRECONDITION"


class ClusterError(Pix2PixError):
    """A real Pachyderm cluster that cannot be reached, refuses us, or lacks an object."""

    exit_code = 8
