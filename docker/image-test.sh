#!/usr/bin/env bash
# The CI step after `make test` (`make image-test`): builds the CPU image with buildah on a local
# Debian bookworm base (no Docker engine or Docker Hub needed), then runs the tests marked
# `container` in tests/docker: the image as a non-root user with /pfs mounted, and the four
# pipelines through the embedded engine's container executor, outputs and provenance checked.
#
# Where buildah cannot be had (not root, no apt-get, or apt-get fails) it prints one `SKIP:` line
# and exits 0. Once buildah is there, a failed build or test fails the step.
#
# Env: PY (python with the package and pytest; default .venv/bin/python), PIX2PIX_BASE_IMAGE (build
# on this base instead of the debootstrapped one), PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
skip() { echo "SKIP: image-test: $*"; exit 0; }
step() { echo "image-test: $*"; }

if ! command -v buildah >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || skip "buildah/debootstrap are not installed and installing them needs root"
  command -v apt-get >/dev/null 2>&1 || skip "buildah/debootstrap are not installed and there is no apt-get"
  apt_log="${TMPDIR:-/tmp}/pix2pix-image-test-apt.log"
  step "installing buildah and debootstrap with apt-get"
  t0=$SECONDS
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      buildah debootstrap; } >"$apt_log" 2>&1 \
    || skip "apt-get install buildah debootstrap failed (log: $apt_log)"
  step "installed in $((SECONDS - t0)) s"
fi
buildah info >/dev/null 2>&1 || skip "buildah is installed but does not work here ('buildah info' fails)"
[[ $(id -u) -eq 0 ]] || skip "buildah run --isolation chroot and debootstrap need root"

t0=$SECONDS
if [[ -n "${PIX2PIX_BASE_IMAGE:-}" ]]; then
  docker/build.sh cpu --builder buildah --base "$PIX2PIX_BASE_IMAGE"
else
  docker/build.sh cpu --builder buildah --local-base
fi
step "image ready in $((SECONDS - t0)) s"

t0=$SECONDS
# PIX2PIX_REQUIRE_IMAGE: the image was just built, so a container test that would skip fails.
# shellcheck disable=SC2086  # PYTEST_ARGS is a word list on purpose
PIX2PIX_REQUIRE_IMAGE=1 "$PY" -m pytest -m container tests/docker ${PYTEST_ARGS:-}
step "container tests done in $((SECONDS - t0)) s"
