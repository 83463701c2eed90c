"""``pix2pix cluster ...`` (a real Pachyderm through python-pachyderm) and ``pix2pix local serve``
(a pachd-compatible gRPC endpoint on the embedded engine). Thin: parse, call one function, print."""
from __future__ import annotations

import json
from pathlib import Path

import click

from pix2pix.cli import cli
from pix2pix.cli.common import output_option
from pix2pix.errors import ClusterError


class _Ctx:
    """What the ``cluster`` group hands its subcommands: the address option, connected lazily."""

    def __init__(self, pachd_address: str | None) -> None:
        self.pachd_address = pachd_address
        self._cluster = None

    @property
    def cluster(self):
        if self._cluster is None:
            from pix2pix.cluster.connection import connect
            self._cluster = connect(self.pachd_address)
        return self._cluster


pass_ctx = click.make_pass_decorator(_Ctx)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@cli.group("cluster")
@click.option("--pachd-address", envvar="PACHD_ADDRESS", metavar="grpc://HOST:PORT",
              help="pachd to talk to [env PACHD_ADDRESS]; default: the active context of the pachctl "
                   "config ($PACH_CONFIG or ~/.pachyderm/config.json), else grpc://localhost:30650.")
@click.pass_context
def cluster_group(ctx: click.Context, pachd_address: str | None) -> None:
    """Drive a real Pachyderm cluster (or `pix2pix local serve`) with python-pachyderm.

    \b
    pix2pix cluster deploy                    # repos training, input_images + the 4 pipelines
    pix2pix cluster put training@master facades/train params.yaml
    pix2pix cluster put input_images photos/
    pix2pix cluster wait input_images         # the commit set of the branch head
    pix2pix cluster get generate_images -o out/
    pix2pix cluster provenance generate_images@master:/1.png
    pix2pix cluster status
    pix2pix cluster models                    # every model commit: lineage, metrics, branches
    pix2pix cluster promote <model commit>    # generation and serving follow it
    """
    ctx.obj = _Ctx(pachd_address)


@cluster_group.command("deploy")
@click.option("--pipelines", "pipelines_dir", type=click.Path(path_type=Path), default=Path("pipelines"),
              show_default=True, help="Folder of pipeline specs (NAME.json, NAME-gpu.json).")
@click.option("--gpu", is_flag=True, help="Use the NAME-gpu.json variants where they exist.")
@pass_ctx
def deploy_cmd(obj: _Ctx, pipelines_dir: Path, gpu: bool) -> None:
    """Create or update the input repos and the pipelines (a second deploy updates them)."""
    from pix2pix.cluster.deploy import deploy

    r = deploy(obj.cluster, pipelines_dir=pipelines_dir, gpu=gpu)
    for verb, names, kind in (("created", r.repos_created, "repo"), ("updated", r.repos_updated, "repo"),
                              ("created", r.pipelines_created, "pipeline"),
                              ("updated", r.pipelines_updated, "pipeline")):
        for name in names:
            click.echo(f"{verb} {kind} {name}")


@cluster_group.command("put")
@click.argument("target", metavar="REPO[@BRANCH]")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dest", default="/", show_default=True, help="Repo folder to put the files under.")
@pass_ctx
def put_cmd(obj: _Ctx, target: str, paths: tuple[Path, ...], dest: str) -> None:
    """Put files and folders into a repo in one commit (a folder's files keep their relative paths)."""
    from pix2pix.cluster.data import put
    from pix2pix.cluster.refs import parse_ref

    r = put(obj.cluster, target=parse_ref(target, what="REPO[@BRANCH]", allow_path=False),
            paths=list(paths), dest=dest)
    click.echo(f"put {_n(len(r.files), 'file')} into {r.repo}@{r.branch}, commit {r.commit_id}")


@cluster_group.command("wait")
@click.argument("ref", metavar="REPO[@BRANCH|@COMMIT]")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Give up after this many seconds (exit code 8); the jobs go on. Default: no limit.")
@pass_ctx
def wait_cmd(obj: _Ctx, ref: str, timeout_s: float | None) -> None:
    """Wait until the commit's commit set has finished in every downstream pipeline."""
    from pix2pix.cluster.data import wait
    from pix2pix.cluster.refs import parse_ref
    from python_pachyderm.proto.v2.pps import pps_pb2

    r = wait(obj.cluster, ref=parse_ref(ref, what="REPO[@BRANCH|@COMMIT]", allow_path=False),
             timeout_s=timeout_s)
    click.echo(f"commit set {r.commit_id} finished")
    for c in r.commits:
        repo = c.commit.repo.name or c.commit.branch.repo.name
        if c.commit.branch.repo.type in ("", "user") and c.commit.repo.type in ("", "user"):
            click.echo(f"  {repo}@{c.commit.branch.name or c.commit.id}")
    for j in r.jobs:
        click.echo(f"  job {j.job.pipeline.name}: {pps_pb2.JobState.Name(j.state).removeprefix('JOB_').lower()}"
                   f" ({j.data_processed + j.data_skipped}/{j.data_total} datums)")


@cluster_group.command("get")
@click.argument("source", metavar="REPO[@REF][:/path]")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder to write into (created if missing); nothing is written outside it.")
@pass_ctx
def get_cmd(obj: _Ctx, source: str, out_dir: Path) -> None:
    """Copy a file or folder from a repo into a local folder."""
    from pix2pix.cluster.data import get
    from pix2pix.cluster.refs import parse_ref

    r = get(obj.cluster, source=parse_ref(source), out_dir=out_dir)
    click.echo(f"wrote {_n(len(r.files), 'file')} from commit {r.commit_id} to {out_dir}")


@cluster_group.command("provenance")
@click.argument("ref", metavar="REPO@COMMIT:/path")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as JSON.")
@pass_ctx
def provenance_cmd(obj: _Ctx, ref: str, as_json: bool) -> None:
    """Trace one output file back to its input image, model, checkpoint and training commits."""
    from pix2pix.cluster.provenance import trace
    from pix2pix.cluster.refs import parse_ref

    t = trace(obj.cluster, ref=parse_ref(ref, what="REPO@COMMIT:/path"))
    click.echo(json.dumps(t.to_dict(), indent=2) if as_json else t.render())


@cluster_group.command("status")
@click.option("--jobs", "jobs_per_pipeline", type=click.IntRange(0), default=3, show_default=True,
              help="Recent jobs to show per pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@pass_ctx
def status_cmd(obj: _Ctx, jobs_per_pipeline: int, as_json: bool) -> None:
    """Pipelines with their state and recent jobs."""
    import dataclasses

    from pix2pix.cluster.status import render, status

    rows = status(obj.cluster, jobs_per_pipeline=jobs_per_pipeline)
    click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) if as_json else render(rows))


@cluster_group.command("models")
@click.option("--repo", "model_repo", default="model", show_default=True,
              help="The repo of exported models.")
@click.option("--eval-repo", "eval_repo", default="evaluate_model", show_default=True,
              help="The repo whose metrics.json files score them.")
@output_option
@pass_ctx
def models_cmd(obj: _Ctx, model_repo: str, eval_repo: str, fmt: str) -> None:
    """Every model commit on the cluster, as `pix2pix list model` shows the embedded engine's:
    CREATED, BRANCHES, CHECKPOINT, TRAINING, METRICS, OPTIONS."""
    from pix2pix.cli.models import print_models
    from pix2pix.cluster.lineage import ClusterReader
    from pix2pix.lineage import list_models

    cluster = obj.cluster
    with cluster.rpc(f"repo {model_repo!r}"):
        cluster.client.inspect_repo(model_repo)  # NOT_FOUND names the repo
        entries = list_models(ClusterReader(cluster.client), model_repo=model_repo,
                              eval_repo=eval_repo)
    print_models(entries, fmt=fmt, model_repo=model_repo)


@cluster_group.command("promote")
@click.argument("commit", metavar="COMMIT")
@click.option("--repo", "model_repo", default="model", show_default=True,
              help="The repo of exported models.")
@click.option("--branch", default="production", show_default=True,
              help="The branch generate_images and serve_model read.")
@pass_ctx
def promote_cmd(obj: _Ctx, commit: str, model_repo: str, branch: str) -> None:
    """Point BRANCH of the model repo at COMMIT (a commit ID, or a ref such as master or
    master^): promote a model, or roll back to an earlier one. Generation and serving follow.
    The same as `pachctl create branch model@production --head COMMIT`."""
    from pix2pix.cluster.refs import Ref

    cluster = obj.cluster
    with cluster.rpc(f"commit {model_repo}@{commit}"):
        target = list(cluster.client.inspect_commit(Ref(model_repo, commit).commit()))[0]
    with cluster.rpc(f"branch {model_repo}@{branch}"):
        before = {b.branch.name: b.head.id for b in cluster.client.list_branch(model_repo)}
        cluster.client.create_branch(model_repo, branch, head_commit=target.commit)
        after = {b.branch.name: b.head.id for b in cluster.client.list_branch(model_repo)}
    if after.get(branch) != target.commit.id:
        raise ClusterError(f"{model_repo}@{branch} points at {after.get(branch) or 'nothing'}, "
                           f"not {target.commit.id}, after create branch; see `pachctl inspect "
                           f"branch {model_repo}@{branch}`")
    was = before.get(branch)
    click.echo(f"{model_repo}@{branch} -> {target.commit.id}"
               + (f" (was {was})" if was and was != target.commit.id else ""))


@cli.group("local")
def local_group() -> None:
    """A pachd-compatible endpoint on this machine, backed by the embedded engine."""


@local_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=30650, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--state", "state_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              envvar="PIX2PIX_STATE",
              help="Engine state folder, the one `pix2pix create repo ...` uses "
                   "[env PIX2PIX_STATE; default: ./.pix2pix].")
@click.option("--executor", type=click.Choice(["process", "container"]), envvar="PIX2PIX_EXECUTOR",
              default=None, help="Run transforms here (process, default) or in transform.image "
                                 "(container: docker, podman or buildah) [env PIX2PIX_EXECUTOR].")
def serve_cmd(port: int, state_dir: Path | None, executor: str | None) -> None:
    """Serve the pfs/pps subset python-pachyderm 7.6 uses, on 127.0.0.1, until SIGINT/SIGTERM."""
    from pix2pix.pachyderm.engine import default_state_dir
    from pix2pix.pachyderm.server import serve_forever

    serve_forever(state_dir=state_dir or default_state_dir(), port=port, executor=executor,
                  announce=lambda msg: click.echo(msg, err=True))


@local_group.command("supervise", hidden=True)
@click.argument("pipeline")
@click.option("--state", "state_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--executor", type=click.Choice(["process", "container"]), default="process")
def supervise_cmd(pipeline: str, state_dir: Path, executor: str) -> None:
    """Keep a spout's or service's code running, or a cron pipeline ticking (started by
    create/start pipeline)."""
    from pix2pix.pachyderm import cron
    from pix2pix.pachyderm.engine import Engine
    from pix2pix.pachyderm.services import is_long_running, supervise
    eng = Engine(state_dir, executor=executor)
    p = eng.inspect_pipeline(pipeline)
    if cron.has_cron(p) and not is_long_running(p):
        cron.run_ticker(eng, pipeline)
    else:
        supervise(eng, pipeline)
