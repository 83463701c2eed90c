#!/usr/bin/env bash
# Makes a local Debian bookworm base image with debootstrap + buildah, for machines that have no
# Docker engine and cannot reach Docker Hub (CI runners, air-gapped hosts). Its python3 is 3.11,
# like python:3.11-slim, so the Dockerfiles build on either base.
#
# Usage: docker/ci-base.sh [--name IMAGE] [--mirror URL] [--rebuild]
# Prints the image name on stdout. Reuses the image when it already exists (one per machine), so
# only the first run pays the ~1 min debootstrap.
set -euo pipefail

name="localhost/pix2pix-base:bookworm"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rebuild=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
    *) echo "ci-base.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "ci-base.sh: $*" >&2; }

for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "error: '$tool' not found; install it with: apt-get install -y buildah debootstrap"
    exit 1
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  log "error: debootstrap needs root (run as root, or build on python:3.11-slim with a Docker engine)"
  exit 1
fi

if [[ $rebuild -eq 0 ]] && buildah inspect --type image "$name" >/dev/null 2>&1; then
  log "reusing base image $name"
  echo "$name"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pix2pix-base.XXXXXX")
container=""
cleanup() {
  [[ -n "$container" ]] && buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  log "error: debootstrap failed (log above); check that $mirror is reachable or pass --mirror"
  exit 1
}
# Security and point-release updates, like the official Debian images; then drop the package
# cache and lists, which the image does not need (Dockerfiles run apt-get update themselves).
cat >"$work/rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*

container=$(buildah from scratch)
buildah copy --quiet "$container" "$work/rootfs" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd /bin/bash \
  --label org.opencontainers.image.description="Debian bookworm minbase made by debootstrap (pix2pix CI base)" \
  "$container"
buildah commit --quiet --rm "$container" "$name" >/dev/null
container=""
log "made base image $name"
echo "$name"
