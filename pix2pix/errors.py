"""One exception base for the package; the CLI maps each class to an exit code in one place.

Every message names the file, field or object at fault and, where it helps, what to do next.
"""


class Pix2PixError(Exception):
    """Base of every error a user can cause. Printed as one line, never as a traceback."""

    exit_code = 1


class UsageError(Pix2PixError):
    """Options that are missing, contradict each other or contradict a checkpoint."""

    exit_code = 2


class DataError(Pix2PixError):
    """An input file or folder that cannot be used (missing, empty, undecodable)."""

    exit_code = 3


class ModelError(Pix2PixError):
    """A checkpoint or exported model that is missing, corrupt or incompatible."""

    exit_code = 4


class SpecError(Pix2PixError):
    """A pipeline spec that is malformed or refers to something that does not exist."""

    exit_code = 5


class StoreError(Pix2PixError):
    """A repo, branch, commit or file that does not exist, or a store that cannot be written."""

    exit_code = 6


class JobError(Pix2PixError):
    """A pipeline job that failed (a datum exhausted its tries, or outputs collided)."""

    exit_code = 7


class ClusterError(Pix2PixError):
    """A real Pachyderm cluster that cannot be reached, refuses us, or lacks an object."""

    exit_code = 8
