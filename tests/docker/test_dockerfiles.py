"""The image definitions, checked without building them (the GPU image cannot be built on a
machine with no CUDA base and no GPU): both Dockerfiles parse, differ only in base image and
TensorFlow package, run as non-root, send only what they need, and the pipeline specs name the
tags build.sh makes. build.sh itself is driven with a stand-in builder that records its argv."""
from __future__ import annotations

import configparser
import fnmatch
import importlib.util
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
VERSION = configparser.ConfigParser()
VERSION.read(REPO / "setup.cfg")
VERSION = VERSION["metadata"]["version"]

# The two ARGs that are allowed to differ between the CPU and GPU Dockerfiles.
VARIANT_ARGS = {"BASE_IMAGE", "TF_PACKAGE"}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str     # the rest of the logical line, continuations joined
    line: int     # where it starts in the file (1-based)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, ``\\`` continuations joined.

    Raises:
        ValueError: an unknown keyword, or a continuation that runs off the end of the file.
    """
    known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
             "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are skipped, as docker does
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        logical = " ".join(p for p in buf if p)
        buf = []
        keyword, _, args = logical.partition(" ")
        if keyword.upper() not in known:
            raise ValueError(f"line {start}: unknown instruction {keyword!r}")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    if buf:
        raise ValueError(f"line {start}: continuation runs past the end of the file")
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by FROM (global ARGs before the first FROM are left out)."""
    groups: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(ins)
    return groups


def arg_default(instructions: list[Instruction], name: str) -> str | None:
    for ins in instructions:
        if ins.keyword == "ARG" and ins.args.split("=", 1)[0] == name:
            return ins.args.split("=", 1)[1].strip('"') if "=" in ins.args else None
    return None


def normalised(instructions: list[Instruction]) -> list[tuple[str, str]]:
    """Instructions with the variant ARGs' defaults blanked, for comparing the two files."""
    out = []
    for ins in instructions:
        args = ins.args
        if ins.keyword == "ARG" and args.split("=", 1)[0] in VARIANT_ARGS:
            args = args.split("=", 1)[0] + "=<variant>"
        out.append((ins.keyword, args))
    return out


@pytest.fixture(scope="module", params=["cpu", "gpu"])
def dockerfile(request) -> tuple[str, list[Instruction]]:
    path = DOCKER / f"Dockerfile.{request.param}"
    return request.param, parse_dockerfile(path.read_text())


# --- the parser itself --------------------------------------------------------------------


def test_parser_joins_continuations_and_rejects_unknown_keywords():
    text = "# c\nARG A=1\nFROM x AS y\nRUN a \\\n  # note\n  && b\nCMD [\"p\"]\n"
    ins = parse_dockerfile(text)
    assert [(i.keyword, i.args, i.line) for i in ins] == [
        ("ARG", "A=1", 2), ("FROM", "x AS y", 3), ("RUN", "a && b", 4), ("CMD", '["p"]', 7)]
    with pytest.raises(ValueError, match="line 1: unknown instruction 'RUNN'"):
        parse_dockerfile("RUNN x\n")
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM x\nRUN a \\\n")


# --- both Dockerfiles -----------------------------------------------------------------------


def test_dockerfiles_differ_only_in_base_image_and_tensorflow_package():
    cpu = parse_dockerfile((DOCKER / "Dockerfile.cpu").read_text())
    gpu = parse_dockerfile((DOCKER / "Dockerfile.gpu").read_text())
    assert normalised(cpu) == normalised(gpu)
    assert arg_default(cpu, "TF_PACKAGE") == "tensorflow-cpu"
    assert arg_default(gpu, "TF_PACKAGE") == "tensorflow"
    assert "python:3.11" in arg_default(cpu, "BASE_IMAGE")
    assert "tensorflow/tensorflow:2.19" in arg_default(gpu, "BASE_IMAGE")
    assert arg_default(gpu, "BASE_IMAGE").endswith("-gpu")


def test_every_stage_starts_from_the_replaceable_base(dockerfile):
    _, ins = dockerfile
    assert ins[0].keyword == "ARG" and ins[0].args.startswith("BASE_IMAGE=")
    froms = [s[0].args.split()[0] for s in stages(ins)]
    assert len(froms) >= 2, "multi-stage: the wheel is built in a stage of its own"
    assert set(froms) == {"${BASE_IMAGE}"}


def test_final_stage_runs_pix2pix_as_non_root(dockerfile):
    _, ins = dockerfile
    final = stages(ins)[-1]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid not in {"0", "root"}
    assert uid == "1000", "Pachyderm workers run code as uid 1000; the image user matches"
    # Nothing after USER may need root.
    after = final[[i.keyword for i in final].index("USER"):]
    assert not [i for i in after if i.keyword in {"RUN", "COPY", "ADD"}]
    cmd = [i.args for i in final if i.keyword == "CMD"]
    assert cmd and json.loads(cmd[-1])[0] == "pix2pix"
    # An ENTRYPOINT would prefix pachyderm-style argv (["pix2pix", ...], ["bash"]) under docker run.
    assert not [i for i in final if i.keyword == "ENTRYPOINT"]


def test_final_stage_has_no_source_build_tools_or_pip_cache(dockerfile):
    _, ins = dockerfile
    final = stages(ins)[-1]
    copies = [i.args for i in final if i.keyword in {"COPY", "ADD"}]
    # Only the finished venv (from another stage) and the python installer script.
    for c in copies:
        assert c.startswith("--from=") or c.split()[0] == "docker/install-python.sh", c
    runs = " ".join(i.args for i in final if i.keyword == "RUN")
    for tool in ("gcc", "build-essential", "pip install", "pip wheel"):
        assert tool not in runs
    # Every pip install that does not use a cache mount must not leave a cache behind.
    for stage in stages(ins):
        for i in stage:
            if i.keyword == "RUN" and "pip install" in i.args and "type=cache" not in i.args:
                assert "--no-cache-dir" in i.args, f"line {i.line}"


def test_labels_and_version_match_setup_cfg(dockerfile):
    _, ins = dockerfile
    final = stages(ins)[-1]
    assert arg_default(final, "VERSION") == VERSION
    labels = " ".join(i.args for i in final if i.keyword == "LABEL")
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.version"):
        assert key in labels


# --- .dockerignore --------------------------------------------------------------------------


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes; a matched folder
    covers everything below it."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        hit = any(fnmatch.fnmatchcase(pre, p) for pre in prefixes)
        if p.startswith("**/"):
            hit = hit or any(fnmatch.fnmatchcase(part, p[3:]) for part in parts)
        if hit:
            ignored = not neg
    return ignored


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", ".pix2pix/state.db", "out/a.png", "demo-out/index.html",
    "pix2pix/__pycache__/cli.cpython-311.pyc", "pix2pix_pachyderm.egg-info/PKG-INFO",
    "bench/results/x.json", "tests/conftest.py", ".notes/README-docker.md", "build/lib/x.py",
])
def test_dockerignore_keeps_local_state_out_of_the_build(path, ignore_patterns):
    assert _ignored(path, ignore_patterns)


def test_dockerignore_sends_everything_the_dockerfiles_copy(ignore_patterns):
    assert not _ignored("pix2pix/cli/__init__.py", ignore_patterns)
    assert not _ignored("pix2pix/pachyderm/schema/x.json", ignore_patterns)
    for variant in ("cpu", "gpu"):
        for ins in parse_dockerfile((DOCKER / f"Dockerfile.{variant}").read_text()):
            if ins.keyword != "COPY" or ins.args.startswith("--from="):
                continue
            *sources, _dest = shlex.split(ins.args)
            for src in sources:
                if src == ".":
                    continue
                assert (REPO / src).exists(), f"Dockerfile.{variant} line {ins.line}: {src}"
                assert not _ignored(src, ignore_patterns), f"{src} is excluded by .dockerignore"


# --- requirements.py: one TensorFlow pin for both images --------------------------------


def _requirements_module():
    spec = importlib.util.spec_from_file_location("docker_requirements", DOCKER / "requirements.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_requirements_swap_tensorflow_and_keep_its_version_and_the_rest(tmp_path):
    reqs = _requirements_module().requirements(REPO / "setup.cfg", "tensorflow")
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    declared = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    tf_decl = next(r for r in declared if r.startswith("tensorflow"))
    version_spec = tf_decl[len("tensorflow-cpu"):]
    assert ("tensorflow" + version_spec) in reqs
    assert not [r for r in reqs if r.startswith("tensorflow-cpu")]
    assert sorted(r for r in reqs if not r.startswith("tensorflow")) == sorted(
        r for r in declared if not r.startswith("tensorflow"))
    cuda = _requirements_module().requirements(REPO / "setup.cfg", "tensorflow[and-cuda]")
    assert "tensorflow[and-cuda]" + version_spec in cuda


def test_requirements_without_tensorflow_is_an_error(tmp_path):
    cfg = tmp_path / "setup.cfg"
    cfg.write_text("[options]\ninstall_requires =\n    numpy\n")
    with pytest.raises(ValueError, match="no tensorflow"):
        _requirements_module().requirements(cfg, "tensorflow")


# --- build.sh, with a stand-in builder --------------------------------------------------------


def _fake_tools(tmp_path: Path, working: dict[str, bool]) -> tuple[Path, Path]:
    """A PATH with the shell tools build.sh needs, plus stand-ins for docker/podman/buildah that
    log their argv and answer `info` with success or failure."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("bash", "env", "sed", "awk", "head", "git", "timeout", "dirname", "cat", "id"):
        real = shutil.which(tool)
        if real:
            (bindir / tool).symlink_to(real)
    for tool, ok in working.items():
        script = bindir / tool
        script.write_text(
            "#!/bin/bash\n"
            f'echo "{tool} $*" >> "{log}"\n'
            f'if [[ "$1" == info ]]; then exit {0 if ok else 1}; fi\n'
            "exit 0\n")
        script.chmod(0o755)
    return bindir, log


def _build_sh(args: list[str], bindir: Path) -> subprocess.CompletedProcess:
    env = {"PATH": str(bindir), "HOME": str(bindir.parent)}
    return subprocess.run([str(bindir / "bash"), str(DOCKER / "build.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_build_sh_skips_a_docker_client_without_engine_and_uses_buildah(tmp_path):
    bindir, log = _fake_tools(tmp_path, {"docker": False, "buildah": True})
    r = _build_sh(["gpu", "--base", "example.org/cuda:1",
                   "--build-arg", "TF_PACKAGE=tensorflow[and-cuda]"], bindir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"pix2pix-pachyderm:{VERSION}-gpu"
    bud = [ln for ln in log.read_text().splitlines() if ln.startswith("buildah bud")]
    assert len(bud) == 1
    argv = bud[0].split()
    assert argv[argv.index("-f") + 1] == str(DOCKER / "Dockerfile.gpu")
    assert argv[argv.index("-t") + 1] == f"pix2pix-pachyderm:{VERSION}-gpu"
    assert "BASE_IMAGE=example.org/cuda:1" in argv
    assert argv[argv.index("TF_PACKAGE=tensorflow[and-cuda]") - 1] == "--build-arg"
    assert f"VERSION={VERSION}" in argv
    assert not [ln for ln in log.read_text().splitlines() if ln.startswith("docker build")]


def test_build_sh_tags_and_pushes_to_a_registry(tmp_path):
    bindir, log = _fake_tools(tmp_path, {"docker": True})
    r = _build_sh(["cpu", "--tag", "me/p2p:dev", "--push", "registry.example.com/team/"], bindir)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert any(c.startswith("docker build") and "-t me/p2p:dev" in c for c in calls)
    assert "docker tag me/p2p:dev registry.example.com/team/p2p:dev" in calls
    assert "docker push registry.example.com/team/p2p:dev" in calls


def test_build_sh_says_clearly_when_no_builder_works(tmp_path):
    bindir, log = _fake_tools(tmp_path, {"docker": False})
    r = _build_sh(["cpu"], bindir)
    assert r.returncode == 1
    assert "no working image builder" in r.stderr
    assert "docker (installed, 'docker info' fails)" in r.stderr
    assert "apt-get install -y buildah" in r.stderr


@pytest.mark.parametrize("args, message", [
    ([], "cpu or gpu"),
    (["tpu"], "unknown argument 'tpu'"),
    (["cpu", "--tag"], "--tag needs a value"),
    (["cpu", "--build-arg", "NOVALUE"], "KEY=VALUE"),
    (["gpu", "--local-base", "--builder", "buildah"], "cpu image only"),
    (["cpu", "--builder", "docker"], "cannot reach its engine"),
])
def test_build_sh_rejects_bad_usage_with_a_message(tmp_path, args, message):
    bindir, _ = _fake_tools(tmp_path, {"docker": False, "buildah": True})
    r = _build_sh(args, bindir)
    assert r.returncode != 0
    assert message in r.stderr


# --- pipeline specs name the tags build.sh makes ------------------------------------------------


def test_pipeline_specs_name_the_image_of_their_variant():
    specs = sorted((REPO / "pipelines").glob("*.json")) if (REPO / "pipelines").is_dir() else []
    if not specs:
        pytest.skip("pipelines/*.json not written yet")
    for path in specs:
        image = json.loads(path.read_text())["transform"]["image"]
        variant = "gpu" if path.stem.endswith("-gpu") else "cpu"
        assert image == f"pix2pix-pachyderm:{VERSION}-{variant}", path.name


# --- image-test.sh: SKIP (exit 0) only where buildah cannot be had ------------------------------


def _image_test_tools(tmp_path: Path, uid: int, tools: dict[str, int]) -> Path:
    """bash and dirname, a stand-in `id` answering ``uid``, and stand-ins exiting with the given
    codes (apt-get, buildah, debootstrap)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname"):
        (bindir / tool).symlink_to(shutil.which(tool))
    (bindir / "id").write_text(f"#!/bin/bash\necho {uid}\n")
    for tool, code in tools.items():
        (bindir / tool).write_text(f"#!/bin/bash\nexit {code}\n")
    for script in bindir.iterdir():
        if not script.is_symlink():
            script.chmod(0o755)
    return bindir


@pytest.mark.parametrize("uid, tools, reason", [
    (1000, {}, "installing them needs root"),
    (0, {}, "there is no apt-get"),
    (0, {"apt-get": 100}, "apt-get install buildah debootstrap failed"),
    (0, {"buildah": 1, "debootstrap": 0}, "'buildah info' fails"),
    (1000, {"buildah": 0, "debootstrap": 0}, "need root"),
])
def test_image_test_skips_with_one_line_where_buildah_cannot_be_had(tmp_path, uid, tools, reason):
    bindir = _image_test_tools(tmp_path, uid, tools)
    r = subprocess.run([str(bindir / "bash"), str(DOCKER / "image-test.sh")], capture_output=True,
                       text=True, timeout=60,
                       env={"PATH": str(bindir), "TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    skips = [ln for ln in r.stdout.splitlines() if ln.startswith("SKIP: image-test:")]
    assert len(skips) == 1 and reason in skips[0], r.stdout
