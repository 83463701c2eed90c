#!/usr/bin/env bash
# Builds the image every pix2pix pipeline stage runs in (transform.image), with docker, podman
# or buildah: the first one that is installed and works (a docker client with no engine does not).
#
# Usage: docker/build.sh cpu|gpu [options]
#   --tag NAME:TAG     image tag (default pix2pix-pachyderm:VERSION-cpu|gpu, as pipelines/*.json name it)
#   --base IMAGE       base image (default: the Dockerfile's BASE_IMAGE, python:3.11-slim for cpu,
#                      tensorflow/tensorflow:2.19.0-gpu for gpu)
#   --local-base       build on a Debian bookworm base made here with debootstrap (docker/ci-base.sh),
#                      for machines with buildah but no Docker Hub access; needs root
#   --push REGISTRY    then tag REGISTRY/NAME:TAG and push it (log in to the registry first)
#   --build-arg K=V    pass a build argument, e.g. TF_PACKAGE='tensorflow[and-cuda]' on a plain CUDA base
#   --builder TOOL     docker, podman or buildah (default: $PIX2PIX_BUILDER, else the first that works)
#   --ca-bundle FILE   CA bundle pip must trust behind a TLS-intercepting proxy (default: $PIP_CERT
#                      when set); passed as a build secret, never stored in the image
#   --dry-run          print the build commands instead of running them
#   -h, --help         this text
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

variant="" tag="" base="" push="" local_base=0 dry_run=0
extra_args=()
builder="${PIX2PIX_BUILDER:-}"
ca_bundle="${PIP_CERT:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    cpu|gpu) [[ -z "$variant" ]] || die "give one variant, cpu or gpu"; variant="$1"; shift ;;
    --tag|--base|--push|--builder|--ca-bundle|--build-arg)
      [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"
      case "$1" in
        --tag) tag="$2" ;; --base) base="$2" ;; --push) push="${2%/}" ;;
        --builder) builder="$2" ;; --ca-bundle) ca_bundle="$2" ;;
        --build-arg) [[ "$2" == ?*=* ]] || die "--build-arg needs KEY=VALUE, not '$2'"
                     extra_args+=(--build-arg "$2") ;;
      esac
      shift 2 ;;
    --local-base) local_base=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -n "$variant" ]] || { usage >&2; die "say which image to build: cpu or gpu"; }

version="$(sed -n 's/^version[[:space:]]*=[[:space:]]*//p' "$repo/setup.cfg" | head -1)"
[[ -n "$version" ]] || die "$repo/setup.cfg has no 'version = ...' in [metadata]"
tag="${tag:-pix2pix-pachyderm:$version-$variant}"
dockerfile="$repo/docker/Dockerfile.$variant"
if [[ -n "$ca_bundle" && ! -r "$ca_bundle" ]]; then
  die "CA bundle '$ca_bundle' is not a readable file (--ca-bundle or \$PIP_CERT)"
fi

# A tool "works" when it can reach its engine/storage, not merely when its binary exists.
works() {
  command -v "$1" >/dev/null 2>&1 || return 1
  # A stopped engine can make `info` hang; bound it where coreutils' timeout exists (not macOS).
  local limit=()
  command -v timeout >/dev/null 2>&1 && limit=(timeout 20)
  ${limit[@]+"${limit[@]}"} "$1" info >/dev/null 2>&1
}

if [[ -n "$builder" ]]; then
  case "$builder" in docker|podman|buildah) ;; *) die "--builder must be docker, podman or buildah, not '$builder'" ;; esac
  works "$builder" || die "$builder is not installed or cannot reach its engine/storage (try '$builder info')"
else
  tried=()
  for t in docker podman buildah; do
    if works "$t"; then builder="$t"; break; fi
    if command -v "$t" >/dev/null 2>&1; then tried+=("$t (installed, '$t info' fails)"); fi
  done
  if [[ -z "$builder" ]]; then
    msg="no working image builder: need docker with a running engine, podman, or buildah"
    [[ ${#tried[@]} -gt 0 ]] && msg="$msg; found ${tried[*]}"
    die "$msg. On Debian/Ubuntu as root: apt-get install -y buildah debootstrap, then rerun with --local-base"
  fi
fi

if [[ $local_base -eq 1 ]]; then
  [[ -z "$base" ]] || die "--local-base and --base exclude each other"
  [[ "$builder" != docker ]] || die "--local-base makes a buildah image, which docker cannot see; use --builder buildah"
  [[ "$variant" == cpu ]] || die "--local-base has no CUDA: it is for the cpu image only"
  if [[ $dry_run -eq 1 ]]; then
    base="localhost/pix2pix-base:bookworm"
    echo "$here/ci-base.sh"
  else
    base="$("$here/ci-base.sh")"
  fi
fi

revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)"
source_url="${PIX2PIX_SOURCE_URL:-$(git -C "$repo" remote get-url origin 2>/dev/null || true)}"
source_url="${source_url/#git@github.com:/https://github.com/}"

args=(-f "$dockerfile" -t "$tag"
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
      --build-arg "SOURCE_URL=$source_url")
[[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
[[ -n "$ca_bundle" ]] && args+=(--secret "id=pip_ca,src=$ca_bundle")
# ${a[@]+...}: an empty array under `set -u` is an error in bash 3.2 (macOS).
args+=(${extra_args[@]+"${extra_args[@]}"})
case "$builder" in
  # BuildKit: RUN --mount (pip cache, CA secret) needs it; the default since Docker 23.
  docker) cmd=(env DOCKER_BUILDKIT=1 docker build "${args[@]}" "$repo") ;;
  podman) cmd=(podman build --layers "${args[@]}" "$repo") ;;
  # chroot isolation: works as root without user namespaces or a runtime (CI containers).
  buildah) cmd=(buildah bud --layers --isolation "${BUILDAH_ISOLATION:-chroot}" "${args[@]}" "$repo") ;;
esac

run() {
  if [[ $dry_run -eq 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

log "building $tag ($variant) with $builder${base:+ on $base}"
start=$SECONDS
run "${cmd[@]}"
[[ $dry_run -eq 1 ]] || log "built $tag in $((SECONDS - start)) s"

if [[ -n "$push" ]]; then
  remote="$push/${tag##*/}"
  run "$builder" tag "$tag" "$remote"
  if [[ "$builder" == buildah ]]; then
    run buildah push "$remote" "docker://$remote"
  else
    run "$builder" push "$remote"
  fi
  [[ $dry_run -eq 1 ]] || log "pushed $remote; name it in transform.image of your pipeline specs"
fi
echo "$tag"
