"""One worker's scratch space for a job (pachd's ``worker/driver``): its ``/pfs`` folder with
the current datum's inputs, the start of the user code, and the collection of ``/pfs/out``.

    <job dir>/w<k>/pfs/<input name>/...   the datum's input files (copies of their blobs)
    <job dir>/w<k>/pfs/out/               empty before each datum; the datum's output after
    <job dir>/w<k>/pfs/.env               the datum's env (what batch_datum loads)
    <job dir>/w<k>/child.pid              the running code, so a later engine can stop it
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from pix2pix.errors import JobError, UsageError
from pix2pix.pachyderm.blobs import BlobStore
from pix2pix.pachyderm.datums import Datum
from pix2pix.pachyderm.executors import Executor, RunRequest, rewrite_pfs
from pix2pix.pachyderm.refs import clean_path
from pix2pix.pachyderm.spec import Transform


class Workspace:
    """Worker ``index`` of a job: its /pfs folder, its executor and the code it runs."""

    def __init__(self, job_dir: Path, index: int, executor: Executor, blobs: BlobStore) -> None:
        self.dir = job_dir / f"w{index}"
        self.root = self.dir / "pfs"
        self.executor = executor
        self.blobs = blobs
        self.placed: dict[str, dict[str, str]] = {}  # input name -> {rel path: sha256}
        self._view: Optional[str] = None
        self.proc = None
        self.root.mkdir(parents=True)

    @property
    def view(self) -> str:
        """How the code sees /pfs: "/pfs" in a container, a host folder for the process executor."""
        if self._view is None:
            self._view = self.executor.visible_root(self.root)
        return self._view

    def as_code_sees(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` (written with /pfs paths) as the code must be told it."""
        return {k: rewrite_pfs(v, self.view) for k, v in env.items()}

    def as_pfs(self, text: str) -> str:
        """Logs show paths as the code was told them: the job folder reads as /pfs again."""
        if self.executor.name != "process":
            return text
        for root in {self.view, str(self.root)}:
            text = text.replace(root, "/pfs")
        return text

    def read_log(self, path: Path) -> str:
        return self.as_pfs(path.read_text(errors="replace") if path.exists() else "")

    def prepare(self, d: Datum, env: dict[str, str], input_names: tuple[str, ...]) -> None:
        """Point /pfs/<input> at this datum's files and give it an empty /pfs/out.

        Files already in place with the same content stay (the model of a cross is placed once
        per job, not once per datum); anything else in an input folder is removed, so the code
        sees exactly this datum. Inputs are copies, never hard links into the blob store: the
        code runs as the store's owner (who may chmod a read-only link and write through it)
        or as root in a container, and either would change every commit holding that content."""
        out = self.root / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        # An image may run its code as a non-root user: let it write its output.
        os.chmod(out, 0o777)
        want: dict[str, dict[str, tuple[str, int]]] = {n: {} for n in input_names}
        for m in d.matches:
            want.setdefault(m.name, {}).update({p.lstrip("/"): (h, s) for p, h, s in m.files})
        for name, files in want.items():
            self._place(name, files)
        lines = [f"{k}={v}" for k, v in self.as_code_sees(env).items()]
        (self.root / ".env").write_text("\n".join(lines) + "\n")

    def _place(self, name: str, files: dict[str, tuple[str, int]]) -> None:
        base = self.root / name
        if not files:
            shutil.rmtree(base, ignore_errors=True)
            self.placed.pop(name, None)
            return
        base.mkdir(parents=True, exist_ok=True)
        have = self.placed.get(name, {})
        for dirpath, dirnames, filenames in os.walk(base, topdown=False):
            for f in filenames:
                host = Path(dirpath) / f
                rel = host.relative_to(base).as_posix()
                keep = rel in files and have.get(rel) == files[rel][0] and \
                    not host.is_symlink() and host.stat().st_size == files[rel][1]
                if not keep:
                    host.unlink()
                    have.pop(rel, None)
            for dn in dirnames:
                try:
                    (Path(dirpath) / dn).rmdir()  # only if empty
                except OSError:
                    pass
        for rel, (digest, _) in files.items():
            if have.get(rel) != digest:
                self.blobs.copy_to(digest, base / rel)
                have[rel] = digest
        self.placed[name] = have

    def clear_out(self) -> None:
        """Empty /pfs/out (what a failed datum left there), leaving an empty folder."""
        out = self.root / "out"
        shutil.rmtree(out, ignore_errors=True)
        try:
            out.mkdir(parents=True, exist_ok=True)
            os.chmod(out, 0o777)  # an image may run its code as a non-root user
        except OSError:
            pass  # the next prepare() makes it again

    def disk_free(self) -> int:
        """Bytes free on the disk of this workspace (the state folder's disk)."""
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return 1 << 62

    def collect(self) -> list[tuple[str, str, int]]:
        """The datum's outputs: the files under /pfs/out, stored as blobs. A symlink is followed
        only to a file inside this job's /pfs (an input, another output), never to a host file:
        the engine reads with its own rights, which a container's code does not have.

        Raises:
            JobError: an output name a repo path cannot hold, or a symlink leading outside /pfs.
        """
        out_dir = self.root / "out"
        pfs_root = self.root.resolve()
        outs = []
        for dirpath, _, files in os.walk(out_dir):
            for f in sorted(files):
                host = Path(dirpath) / f
                rel = host.relative_to(out_dir).as_posix()
                try:
                    path = clean_path("/" + rel, what="output path")
                except UsageError as e:
                    raise JobError(f"/pfs/out/{rel}: {e}") from None
                if host.is_symlink():
                    target = os.readlink(host)
                    if target.startswith("/pfs/"):
                        # `ln -s /pfs/<input>/x /pfs/out/x` (a common Pachyderm idiom) names the
                        # code's view of /pfs, which only a container has: read it from our root.
                        host = self.root / target[len("/pfs/"):]
                    host = host.resolve()
                    if pfs_root not in host.parents:
                        raise JobError(f"/pfs/out/{rel} is a symlink to {target}, outside /pfs; "
                                       "refused (copy the file into /pfs/out instead)")
                if not host.is_file():
                    continue  # sockets, broken links: nothing to version
                digest, size = self.blobs.put_file(host)
                outs.append((path, digest, size))
        return sorted(outs)

    def request(self, transform: Transform, env: dict[str, str], log: Path, *,
                err: bool = False) -> RunRequest:
        """A start of the user code (``errCmd``/``errStdin`` with ``err``)."""
        cmd, stdin = ((transform.err_cmd, transform.err_stdin) if err
                      else (transform.cmd, transform.stdin))
        req = RunRequest(cmd=list(cmd), stdin=None if stdin is None else list(stdin),
                         env=env, image=transform.image, pfs_root=self.root,
                         work_dir=self.dir / "work", log_path=log,
                         working_dir=transform.working_dir)
        if self.executor.name == "process":
            req.extra["root"] = self.view
        return req

    def start(self, req: RunRequest):
        proc = self.executor.start(req)
        self.proc = proc
        # Remembered so that, if this engine process is killed, the next one can stop the code.
        (self.dir / "child.pid").write_text(str(proc.pid))
        return proc
