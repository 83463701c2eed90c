"""PFS records: repos, branches and their provenance, finished commits with their file trees and
provenance, open commits with their staged operations. Reads return the dataclasses of
:mod:`pix2pix.pachyderm.info`; writes join the caller's :meth:`~.db.Database.tx`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Optional

from pix2pix.pachyderm.info import BranchInfo, CommitInfo, Provenance, RepoInfo
from pix2pix.pachyderm.store.db import Database

Tree = dict[str, tuple[str, int]]  # path -> (sha256, size)


@dataclass(frozen=True)
class StagedOp:
    """One staged change of an open commit, applied in order at finish."""

    op: str  # put | append | delete
    path: str
    hash: Optional[str] = None
    size: Optional[int] = None


@dataclass(frozen=True)
class Owner:
    """The process that holds an open commit or runs a job."""

    pid: Optional[int]
    start: Optional[str]


class PfsQueries(Database):
    # -- repos ---------------------------------------------------------------------------------
    def get_repo(self, name: str) -> Optional[RepoInfo]:
        row = self._row("SELECT * FROM repos WHERE name=?", (name,))
        return self._repo_info(row) if row else None

    def list_repos(self) -> list[RepoInfo]:
        """All repos, newest first (as pachctl lists them)."""
        return [self._repo_info(r) for r in self._rows("SELECT * FROM repos ORDER BY created DESC")]

    def _repo_info(self, row) -> RepoInfo:
        branches = [r["name"] for r in self._rows(
            "SELECT name FROM branches WHERE repo=? ORDER BY name", (row["name"],))]
        head = self._row("SELECT c.size FROM branches b JOIN commits c ON c.repo=b.repo "
                         "AND c.id=b.head WHERE b.repo=? AND b.name='master'", (row["name"],))
        return RepoInfo(name=row["name"], description=row["description"], created=row["created"],
                        size=head["size"] if head else 0, branches=branches, type=row["type"])

    def insert_repo(self, name: str, description: str, type_: str, branch: str = "master") -> None:
        """A new repo with an empty branch."""
        with self.tx():
            self._exec("INSERT INTO repos(name, description, created, type) VALUES (?,?,?,?)",
                       (name, description, time.time(), type_))
            self.ensure_branch(name, branch)

    def set_repo_description(self, name: str, description: str) -> None:
        self._exec("UPDATE repos SET description=? WHERE name=?", (description, name))

    def set_repo_type(self, name: str, type_: str) -> None:
        self._exec("UPDATE repos SET type=? WHERE name=?", (type_, name))

    def delete_repo(self, name: str) -> None:
        """The repo and everything in it: commits, files, branches, open commits, its queued
        triggers and its branches' provenance."""
        with self.tx():
            for table, col in (("files", "repo"), ("commit_provenance", "repo"),
                               ("commits", "repo"), ("branches", "repo"), ("staged", "repo"),
                               ("open_commits", "repo"), ("pending", "repo"),
                               ("branch_provenance", "repo"), ("repos", "name")):
                self._exec(f"DELETE FROM {table} WHERE {col}=?", (name,))

    # -- branches ------------------------------------------------------------------------------
    def get_branch(self, repo: str, name: str) -> Optional[BranchInfo]:
        row = self._row("SELECT head FROM branches WHERE repo=? AND name=?", (repo, name))
        return BranchInfo(repo=repo, name=name, head=row["head"]) if row else None

    def list_branches(self, repo: str) -> list[BranchInfo]:
        return [BranchInfo(repo=repo, name=r["name"], head=r["head"]) for r in self._rows(
            "SELECT name, head FROM branches WHERE repo=? ORDER BY name", (repo,))]

    def set_branch_head(self, repo: str, name: str, head: Optional[str]) -> None:
        """Create the branch, or move it, to ``head`` (None: empty)."""
        self._exec("INSERT INTO branches(repo, name, head) VALUES (?,?,?) "
                   "ON CONFLICT(repo, name) DO UPDATE SET head=excluded.head", (repo, name, head))

    def ensure_branch(self, repo: str, name: str) -> None:
        """The branch, empty, unless it exists already."""
        self._exec("INSERT OR IGNORE INTO branches(repo, name, head) VALUES (?,?,NULL)",
                   (repo, name))

    def set_branch_provenance(self, repo: str, branch: str,
                              provenance: Iterable[tuple[str, str]]) -> None:
        """What ``repo@branch`` is computed from (a pipeline's output branch: its inputs)."""
        with self.tx():
            self._exec("DELETE FROM branch_provenance WHERE repo=? AND branch=?", (repo, branch))
            self._exec_many("INSERT OR IGNORE INTO branch_provenance(repo, branch, prov_repo, "
                            "prov_branch) VALUES (?,?,?,?)",
                            [(repo, branch, r, b) for r, b in provenance])

    def downstream(self, repo: str, branch: Optional[str] = None) -> list[tuple[str, str]]:
        """The branches computed directly from ``repo@branch`` (any branch of it without one)."""
        if branch is None:
            rows = self._rows("SELECT DISTINCT repo, branch FROM branch_provenance WHERE "
                              "prov_repo=? ORDER BY repo, branch", (repo,))
        else:
            rows = self._rows("SELECT repo, branch FROM branch_provenance WHERE prov_repo=? "
                              "AND prov_branch=? ORDER BY repo, branch", (repo, branch))
        return [(r["repo"], r["branch"]) for r in rows]

    # -- finished commits ----------------------------------------------------------------------
    def commit_exists(self, repo: str, commit_id: str) -> bool:
        return self._row("SELECT 1 FROM commits WHERE repo=? AND id=?", (repo, commit_id)) is not None

    def commit_on_branch(self, repo: str, commit_id: str, branch: str) -> bool:
        return self._row("SELECT 1 FROM commits WHERE repo=? AND id=? AND branch=?",
                         (repo, commit_id, branch)) is not None

    def get_commit(self, repo: str, commit_id: str) -> Optional[CommitInfo]:
        row = self._row("SELECT * FROM commits WHERE repo=? AND id=?", (repo, commit_id))
        return self._commit_info(row) if row else None

    def commit_parent(self, repo: str, commit_id: str) -> Optional[str]:
        row = self._row("SELECT parent FROM commits WHERE repo=? AND id=?", (repo, commit_id))
        return row["parent"] if row else None

    def list_commits(self, repo: str, limit: Optional[int] = None) -> list[CommitInfo]:
        """A repo's finished commits, newest first."""
        sql, args = "SELECT * FROM commits WHERE repo=? ORDER BY seq DESC", [repo]
        if limit:
            sql, args = sql + " LIMIT ?", args + [limit]
        return [self._commit_info(r) for r in self._rows(sql, args)]

    def commit_children(self, repo: str, commit_id: str) -> list[str]:
        """IDs of the finished commits whose parent is ``commit_id``, oldest first."""
        return [r["id"] for r in self._rows(
            "SELECT id FROM commits WHERE repo=? AND parent=? ORDER BY seq", (repo, commit_id))]

    def commit_set(self, commit_set_id: str) -> list[CommitInfo]:
        """The finished commits of one commit set, in the order they were made."""
        return [self._commit_info(r) for r in self._rows(
            "SELECT * FROM commits WHERE id=? ORDER BY seq", (commit_set_id,))]

    def list_commit_sets(self, limit: Optional[int] = None) -> list[str]:
        """Global IDs, newest first."""
        sql, args = "SELECT id, MAX(seq) AS s FROM commits GROUP BY id ORDER BY s DESC", []
        if limit:
            sql, args = sql + " LIMIT ?", [limit]
        return [r["id"] for r in self._rows(sql, args)]

    def _commit_info(self, row) -> CommitInfo:
        prov = [Provenance(repo=r["prov_repo"], branch=r["prov_branch"], commit=r["prov_commit"])
                for r in self._rows("SELECT * FROM commit_provenance WHERE repo=? AND "
                                    "commit_id=? ORDER BY prov_repo", (row["repo"], row["id"]))]
        return CommitInfo(id=row["id"], repo=row["repo"], branch=row["branch"], parent=row["parent"],
                          origin=row["origin"], started=row["started"], finished=row["finished"],
                          size=row["size"], description=row["description"], provenance=prov)

    def tree(self, repo: str, commit_id: Optional[str]) -> Tree:
        """``{path: (sha256, size)}`` of a finished commit (empty for None)."""
        if commit_id is None:
            return {}
        return {r["path"]: (r["hash"], r["size"]) for r in self._rows(
            "SELECT path, hash, size FROM files WHERE repo=? AND commit_id=? ORDER BY path",
            (repo, commit_id))}

    def write_commit(self, *, repo: str, commit_id: str, branch: str, parent: Optional[str],
                     origin: str, started: float, description: str, tree: Tree,
                     provenance: Iterable[tuple[str, str, str]] = ()) -> float:
        """Insert a finished commit with its tree and provenance and move the branch head to
        it, in one transaction. Returns the finish time."""
        finished = time.time()
        size = sum(s for _, s in tree.values())
        with self.tx():
            self._exec("INSERT INTO commits(id, repo, branch, parent, origin, started, finished, "
                       "size, description) VALUES (?,?,?,?,?,?,?,?,?)",
                       (commit_id, repo, branch, parent, origin, started, finished, size,
                        description))
            self._exec_many("INSERT INTO files(repo, commit_id, path, hash, size) VALUES (?,?,?,?,?)",
                            [(repo, commit_id, p, h, s) for p, (h, s) in tree.items()])
            self._exec_many("INSERT INTO commit_provenance(repo, commit_id, prov_repo, prov_branch, "
                            "prov_commit) VALUES (?,?,?,?,?)",
                            [(repo, commit_id, r, b, i) for r, b, i in provenance])
            self.set_branch_head(repo, branch, commit_id)
        return finished

    # -- open commits --------------------------------------------------------------------------
    def insert_open_commit(self, *, repo: str, commit_id: str, branch: str, parent: Optional[str],
                           description: str, owner: Owner) -> None:
        self._exec("INSERT INTO open_commits(id, repo, branch, parent, description, started, pid, "
                   "pid_start) VALUES (?,?,?,?,?,?,?,?)",
                   (commit_id, repo, branch, parent, description, time.time(), owner.pid,
                    owner.start))

    def get_open_commit(self, repo: str, commit_id: str) -> Optional[CommitInfo]:
        """An open commit: ``finished`` is None, ``size`` counts the bytes staged so far."""
        row = self._row("SELECT * FROM open_commits WHERE repo=? AND id=?", (repo, commit_id))
        return self._open_info(row) if row else None

    def list_open_commits(self, repo: Optional[str] = None,
                          branch: Optional[str] = None) -> list[CommitInfo]:
        """Open commits, newest first."""
        sql, args = "SELECT * FROM open_commits WHERE 1=1", []
        if repo is not None:
            sql, args = sql + " AND repo=?", args + [repo]
        if branch is not None:
            sql, args = sql + " AND branch=?", args + [branch]
        return [self._open_info(r) for r in self._rows(sql + " ORDER BY started DESC", args)]

    def _open_info(self, row) -> CommitInfo:
        staged = self._row("SELECT COALESCE(SUM(size), 0) AS n FROM staged WHERE repo=? "
                           "AND commit_id=?", (row["repo"], row["id"]))
        return CommitInfo(id=row["id"], repo=row["repo"], branch=row["branch"], parent=row["parent"],
                          origin="USER", started=row["started"], finished=None, size=staged["n"],
                          description=row["description"])

    def open_commit_repos(self, commit_id: str) -> list[str]:
        """Repos where the commit set ``commit_id`` still has an open commit."""
        return [r["repo"] for r in self._rows(
            "SELECT repo FROM open_commits WHERE id=? ORDER BY repo", (commit_id,))]

    def open_commit_owners(self) -> list[tuple[str, str, Owner]]:
        """(repo, commit id, owner) of every open commit."""
        return [(r["repo"], r["id"], Owner(r["pid"], r["pid_start"]))
                for r in self._rows("SELECT repo, id, pid, pid_start FROM open_commits")]

    def set_open_description(self, repo: str, commit_id: str, description: str) -> None:
        self._exec("UPDATE open_commits SET description=? WHERE repo=? AND id=?",
                   (description, repo, commit_id))

    def forget_open_commit(self, repo: str, commit_id: str) -> None:
        """Drop an open commit and everything staged in it."""
        with self.tx():
            self._exec("DELETE FROM staged WHERE repo=? AND commit_id=?", (repo, commit_id))
            self._exec("DELETE FROM open_commits WHERE repo=? AND id=?", (repo, commit_id))

    def stage(self, repo: str, commit_id: str, op: StagedOp) -> None:
        self._exec("INSERT INTO staged(repo, commit_id, op, path, hash, size) VALUES (?,?,?,?,?,?)",
                   (repo, commit_id, op.op, op.path, op.hash, op.size))

    def staged_ops(self, repo: str, commit_id: str) -> list[StagedOp]:
        return [StagedOp(r["op"], r["path"], r["hash"], r["size"]) for r in self._rows(
            "SELECT op, path, hash, size FROM staged WHERE repo=? AND commit_id=? ORDER BY seq",
            (repo, commit_id))]

    def count_staged(self) -> int:
        """Staged operations of every open commit (0 once they are all finished or dropped)."""
        return self._row("SELECT COUNT(*) AS n FROM staged")["n"]
