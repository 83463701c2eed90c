"""PFS records: projects, repos, branches and their provenance, commits (open ones with their
staged operations, finished ones with their file trees) and commit provenance. Reads return the
dataclasses of :mod:`pix2pix.pachyderm.info`; writes join the caller's
:meth:`~.db.Database.tx`. Repo names are qualified (``proj/images``; ``images`` in the default
project)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from pix2pix.pachyderm.info import BranchInfo, CommitInfo, ProjectInfo, Provenance, RepoInfo
from pix2pix.pachyderm.refs import split_name
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
    # -- projects ------------------------------------------------------------------------------
    def get_project(self, name: str) -> Optional[ProjectInfo]:
        row = self._row("SELECT * FROM projects WHERE name=?", (name,))
        return ProjectInfo(row["name"], row["description"], row["created"]) if row else None

    def list_projects(self) -> list[ProjectInfo]:
        return [ProjectInfo(r["name"], r["description"], r["created"])
                for r in self._rows("SELECT * FROM projects ORDER BY name")]

    def insert_project(self, name: str, description: str) -> None:
        self._exec("INSERT INTO projects(name, description, created) VALUES (?,?,?)",
                   (name, description, time.time()))

    def set_project_description(self, name: str, description: str) -> None:
        self._exec("UPDATE projects SET description=? WHERE name=?", (description, name))

    def delete_project(self, name: str) -> None:
        self._exec("DELETE FROM projects WHERE name=?", (name,))

    # -- repos ---------------------------------------------------------------------------------
    def get_repo(self, name: str) -> Optional[RepoInfo]:
        row = self._row("SELECT * FROM repos WHERE name=?", (name,))
        return self._repo_info(row) if row else None

    def list_repos(self, project: Optional[str] = None) -> list[RepoInfo]:
        """Repos (of one project, or all), newest first (as pachctl lists them)."""
        sql, args = "SELECT * FROM repos", []
        if project is not None:
            sql, args = sql + " WHERE project=?", [project]
        return [self._repo_info(r) for r in self._rows(sql + " ORDER BY created DESC", args)]

    def _repo_info(self, row) -> RepoInfo:
        branches = [r["name"] for r in self._rows(
            "SELECT name FROM branches WHERE repo=? ORDER BY name", (row["name"],))]
        head = self._row("SELECT c.size FROM branches b JOIN commits c ON c.repo=b.repo "
                         "AND c.id=b.head WHERE b.repo=? AND b.name='master'", (row["name"],))
        return RepoInfo(name=row["name"], description=row["description"], created=row["created"],
                        size=head["size"] if head else 0, branches=branches, type=row["type"],
                        project=row["project"])

    def insert_repo(self, name: str, description: str, type_: str) -> None:
        """A new repo, with no branch yet (as in pachd: its first commit makes one)."""
        self._exec("INSERT INTO repos(name, description, created, type, project) VALUES (?,?,?,?,?)",
                   (name, description, time.time(), type_, split_name(name)[0]))

    def set_repo_description(self, name: str, description: str) -> None:
        self._exec("UPDATE repos SET description=? WHERE name=?", (description, name))

    def set_repo_type(self, name: str, type_: str) -> None:
        self._exec("UPDATE repos SET type=? WHERE name=?", (type_, name))

    def delete_repo(self, name: str) -> None:
        """The repo and everything in it: commits, files, branches and their provenance, and
        the jobs queued on its commits."""
        with self.tx():
            for table, col in (("files", "repo"), ("commit_provenance", "repo"),
                               ("commits", "repo"), ("branches", "repo"), ("staged", "repo"),
                               ("branch_provenance", "repo"), ("repos", "name")):
                self._exec(f"DELETE FROM {table} WHERE {col}=?", (name,))

    # -- branches ------------------------------------------------------------------------------
    def get_branch(self, repo: str, name: str) -> Optional[BranchInfo]:
        row = self._row("SELECT * FROM branches WHERE repo=? AND name=?", (repo, name))
        return self._branch_info(row) if row else None

    def list_branches(self, repo: str) -> list[BranchInfo]:
        """A repo's branches, newest first (as pachd lists them)."""
        return [self._branch_info(r) for r in self._rows(
            "SELECT * FROM branches WHERE repo=? ORDER BY created DESC, name", (repo,))]

    def _branch_info(self, row) -> BranchInfo:
        prov = [f"{r}@{b}" for r, b in self.upstream(row["repo"], row["name"])]
        return BranchInfo(repo=row["repo"], name=row["name"], head=row["head"], provenance=prov,
                          created=row["created"],
                          trigger=json.loads(row["trigger"]) if row["trigger"] else None)

    def set_branch_head(self, repo: str, name: str, head: Optional[str]) -> None:
        """Create the branch, or move it, to ``head``."""
        self._exec("INSERT INTO branches(repo, name, head, created) VALUES (?,?,?,?) "
                   "ON CONFLICT(repo, name) DO UPDATE SET head=excluded.head",
                   (repo, name, head, time.time()))

    def set_branch_trigger(self, repo: str, name: str, trigger: Optional[dict]) -> None:
        self._exec("UPDATE branches SET trigger=? WHERE repo=? AND name=?",
                   (json.dumps(trigger, sort_keys=True) if trigger else "", repo, name))

    def delete_branch(self, repo: str, name: str) -> None:
        with self.tx():
            self._exec("DELETE FROM branches WHERE repo=? AND name=?", (repo, name))
            self._exec("DELETE FROM branch_provenance WHERE repo=? AND branch=?", (repo, name))

    def triggered_by(self, repo: str, branch: str) -> list[BranchInfo]:
        """The branches of ``repo`` whose trigger watches ``branch``."""
        return [b for b in self.list_branches(repo) if b.trigger and b.trigger.get("branch") == branch]

    def set_branch_provenance(self, repo: str, branch: str,
                              provenance: Iterable[tuple[str, str]]) -> None:
        """What ``repo@branch`` is computed from (a pipeline's output branch: its inputs)."""
        with self.tx():
            self._exec("DELETE FROM branch_provenance WHERE repo=? AND branch=?", (repo, branch))
            self._exec_many("INSERT OR IGNORE INTO branch_provenance(repo, branch, prov_repo, "
                            "prov_branch) VALUES (?,?,?,?)",
                            [(repo, branch, r, b) for r, b in provenance])

    def upstream(self, repo: str, branch: str) -> list[tuple[str, str]]:
        """The branches ``repo@branch`` is computed from directly."""
        return [(r["prov_repo"], r["prov_branch"]) for r in self._rows(
            "SELECT prov_repo, prov_branch FROM branch_provenance WHERE repo=? AND branch=? "
            "ORDER BY prov_repo, prov_branch", (repo, branch))]

    def downstream(self, repo: str, branch: Optional[str] = None) -> list[tuple[str, str]]:
        """The branches computed directly from ``repo@branch`` (any branch of it without one)."""
        if branch is None:
            rows = self._rows("SELECT DISTINCT repo, branch FROM branch_provenance WHERE "
                              "prov_repo=? ORDER BY repo, branch", (repo,))
        else:
            rows = self._rows("SELECT repo, branch FROM branch_provenance WHERE prov_repo=? "
                              "AND prov_branch=? ORDER BY repo, branch", (repo, branch))
        return [(r["repo"], r["branch"]) for r in rows]

    # -- commits -------------------------------------------------------------------------------
    def insert_commit(self, *, repo: str, commit_id: str, branch: str, parent: Optional[str],
                      origin: str, description: str = "", owner: Optional[Owner] = None,
                      provenance: Iterable[tuple[str, str, str]] = ()) -> None:
        """A new open commit (``finished`` NULL) with its provenance (repo, branch, commit)."""
        with self.tx():
            self._exec("INSERT INTO commits(id, repo, branch, parent, origin, started, "
                       "description, pid, pid_start) VALUES (?,?,?,?,?,?,?,?,?)",
                       (commit_id, repo, branch, parent, origin, time.time(), description,
                        owner.pid if owner else None, owner.start if owner else None))
            self._exec_many("INSERT INTO commit_provenance(repo, commit_id, prov_repo, prov_branch, "
                            "prov_commit) VALUES (?,?,?,?,?)",
                            [(repo, commit_id, r, b, i) for r, b, i in provenance])

    def finish_commit(self, repo: str, commit_id: str, *, tree: Tree, error: str = "",
                      description: Optional[str] = None) -> None:
        """Finish an open commit with its whole tree (and an error, if any)."""
        size = sum(s for _, s in tree.values())
        with self.tx():
            self._exec_many("INSERT INTO files(repo, commit_id, path, hash, size) VALUES (?,?,?,?,?)",
                            [(repo, commit_id, p, h, s) for p, (h, s) in tree.items()])
            self._exec("DELETE FROM staged WHERE repo=? AND commit_id=?", (repo, commit_id))
            self._exec("UPDATE commits SET finished=?, size=?, error=?, pid=NULL, pid_start=NULL"
                       + (", description=?" if description is not None else "")
                       + " WHERE repo=? AND id=?",
                       (time.time(), size, error, *([description] if description is not None else []),
                        repo, commit_id))

    def commit_exists(self, repo: str, commit_id: str) -> bool:
        return self._row("SELECT 1 FROM commits WHERE repo=? AND id=?", (repo, commit_id)) is not None

    def get_commit(self, repo: str, commit_id: str) -> Optional[CommitInfo]:
        """A commit, open (``finished`` None, ``size`` the bytes staged so far) or finished."""
        row = self._row("SELECT * FROM commits WHERE repo=? AND id=?", (repo, commit_id))
        return self._commit_info(row) if row else None

    def commit_parent(self, repo: str, commit_id: str) -> Optional[str]:
        row = self._row("SELECT parent FROM commits WHERE repo=? AND id=?", (repo, commit_id))
        return row["parent"] if row else None

    def list_commits(self, repo: Optional[str] = None, *, project: Optional[str] = None,
                     limit: Optional[int] = None) -> list[CommitInfo]:
        """Commits of a repo (or of every repo of ``project``), newest first."""
        sql, args = "SELECT * FROM commits", []
        if repo is not None:
            sql, args = sql + " WHERE repo=?", [repo]
        elif project is not None:
            sql, args = sql + " WHERE repo IN (SELECT name FROM repos WHERE project=?)", [project]
        sql += " ORDER BY seq DESC"
        if limit:
            sql, args = sql + " LIMIT ?", args + [limit]
        return [self._commit_info(r) for r in self._rows(sql, args)]

    def commit_children(self, repo: str, commit_id: str) -> list[str]:
        """IDs of the commits whose parent is ``commit_id``, oldest first."""
        return [r["id"] for r in self._rows(
            "SELECT id FROM commits WHERE repo=? AND parent=? ORDER BY seq", (repo, commit_id))]

    def commit_set(self, commit_set_id: str) -> list[CommitInfo]:
        """The commits of one commit set, in the order they were made."""
        return [self._commit_info(r) for r in self._rows(
            "SELECT * FROM commits WHERE id=? ORDER BY seq", (commit_set_id,))]

    def list_commit_sets(self, limit: Optional[int] = None) -> list[str]:
        """Global IDs, newest first."""
        sql, args = "SELECT id, MAX(seq) AS s FROM commits GROUP BY id ORDER BY s DESC", []
        if limit:
            sql, args = sql + " LIMIT ?", [limit]
        return [r["id"] for r in self._rows(sql, args)]

    def subvenant_commits(self, repo: str, commit_id: str) -> list[tuple[str, str]]:
        """(repo, commit id) of the commits computed from ``repo@commit_id``."""
        return [(r["repo"], r["commit_id"]) for r in self._rows(
            "SELECT repo, commit_id FROM commit_provenance WHERE prov_repo=? AND prov_commit=?",
            (repo, commit_id))]

    def _commit_info(self, row) -> CommitInfo:
        prov = [Provenance(repo=r["prov_repo"], branch=r["prov_branch"], commit=r["prov_commit"])
                for r in self._rows("SELECT * FROM commit_provenance WHERE repo=? AND "
                                    "commit_id=? ORDER BY prov_repo", (row["repo"], row["id"]))]
        size = row["size"]
        if row["finished"] is None:
            size = self._row("SELECT COALESCE(SUM(size), 0) AS n FROM staged WHERE repo=? AND "
                             "commit_id=?", (row["repo"], row["id"]))["n"]
        return CommitInfo(id=row["id"], repo=row["repo"], branch=row["branch"], parent=row["parent"],
                          origin=row["origin"], started=row["started"], finished=row["finished"],
                          size=size, description=row["description"], provenance=prov,
                          error=row["error"])

    def tree(self, repo: str, commit_id: Optional[str]) -> Tree:
        """``{path: (sha256, size)}`` of a finished commit (empty for None)."""
        if commit_id is None:
            return {}
        return {r["path"]: (r["hash"], r["size"]) for r in self._rows(
            "SELECT path, hash, size FROM files WHERE repo=? AND commit_id=? ORDER BY path",
            (repo, commit_id))}

    def set_commit_description(self, repo: str, commit_id: str, description: str) -> None:
        self._exec("UPDATE commits SET description=? WHERE repo=? AND id=?",
                   (description, repo, commit_id))

    def reparent(self, repo: str, old_parent: str, new_parent: Optional[str]) -> None:
        """The children of ``old_parent`` become children of ``new_parent``."""
        self._exec("UPDATE commits SET parent=? WHERE repo=? AND parent=?",
                   (new_parent, repo, old_parent))

    def delete_commit(self, repo: str, commit_id: str) -> None:
        """A commit with its files, staged ops and provenance (branches must not point at it)."""
        with self.tx():
            for table, col in (("files", "commit_id"), ("staged", "commit_id"),
                               ("commit_provenance", "commit_id"), ("commits", "id")):
                self._exec(f"DELETE FROM {table} WHERE repo=? AND {col}=?", (repo, commit_id))

    # -- open commits --------------------------------------------------------------------------
    def list_open_commits(self, repo: Optional[str] = None,
                          branch: Optional[str] = None) -> list[CommitInfo]:
        """Open commits, newest first."""
        sql, args = "SELECT * FROM commits WHERE finished IS NULL", []
        if repo is not None:
            sql, args = sql + " AND repo=?", args + [repo]
        if branch is not None:
            sql, args = sql + " AND branch=?", args + [branch]
        return [self._commit_info(r) for r in self._rows(sql + " ORDER BY seq DESC", args)]

    def open_commit_owners(self) -> list[tuple[str, str, Owner]]:
        """(repo, commit id, owner) of every open commit a local process holds."""
        return [(r["repo"], r["id"], Owner(r["pid"], r["pid_start"])) for r in self._rows(
            "SELECT repo, id, pid, pid_start FROM commits WHERE finished IS NULL AND pid IS NOT NULL")]

    def stage(self, repo: str, commit_id: str, op: StagedOp) -> None:
        self._exec("INSERT INTO staged(repo, commit_id, op, path, hash, size) VALUES (?,?,?,?,?,?)",
                   (repo, commit_id, op.op, op.path, op.hash, op.size))

    def stage_many(self, repo: str, commit_id: str, ops: Iterable[StagedOp]) -> None:
        self._exec_many("INSERT INTO staged(repo, commit_id, op, path, hash, size) VALUES "
                        "(?,?,?,?,?,?)", [(repo, commit_id, o.op, o.path, o.hash, o.size) for o in ops])

    def staged_ops(self, repo: str, commit_id: str) -> list[StagedOp]:
        return [StagedOp(r["op"], r["path"], r["hash"], r["size"]) for r in self._rows(
            "SELECT op, path, hash, size FROM staged WHERE repo=? AND commit_id=? ORDER BY seq",
            (repo, commit_id))]

    def referenced_blobs(self) -> set[str]:
        """Every blob hash something refers to: a commit's files, an open commit's staged
        puts, a datum's outputs (kept for skipping). One statement: one consistent snapshot."""
        return {r[0] for r in self._rows(
            "SELECT hash FROM files UNION SELECT hash FROM staged WHERE hash IS NOT NULL "
            "UNION SELECT hash FROM datum_outputs")}

    def blob_references(self) -> Iterator[tuple[str, str, int]]:
        """(where, hash, size) of every reference to a blob, for fsck: ``where`` names the
        commit file, staged put or datum output."""
        for r in self._rows("SELECT repo, commit_id, path, hash, size FROM files"):
            yield f"commit {r[0]}@{r[1]}:{r[2]}", r[3], r[4]
        for r in self._rows("SELECT repo, commit_id, path, hash, size FROM staged WHERE hash "
                            "IS NOT NULL"):
            yield f"open commit {r[0]}@{r[1]}:{r[2]} (staged)", r[3], r[4]
        for r in self._rows("SELECT pipeline, job_id, datum_id, path, hash, size FROM "
                            "datum_outputs"):
            yield f"job {r[0]}@{r[1]} datum {r[2][:12]} output {r[3]}", r[4], r[5]

    def count_staged(self) -> int:
        """Staged operations of every open commit (0 once they are all finished or dropped)."""
        return self._row("SELECT COUNT(*) AS n FROM staged")["n"]
