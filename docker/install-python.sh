#!/bin/sh
# Makes python3 (>= 3.10) usable on the base image. A no-op on python:3.x images and on
# TensorFlow's images; on a bare Debian/Ubuntu base (the debootstrapped bookworm used in CI) it
# installs the distribution's python3 with apt-get and removes the package lists again.
#
# Usage: install-python.sh build|runtime
#   build    also needs venv + ensurepip, to create /opt/venv
#   runtime  only the interpreter that /opt/venv links to
set -eu
mode="${1:-runtime}"
need="import sys; assert sys.version_info >= (3, 10)"
[ "$mode" = build ] && need="$need; import venv, ensurepip"

if command -v python3 >/dev/null 2>&1 && python3 -c "$need" 2>/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-python.sh: the base image has no python3 >= 3.10 with venv and no apt-get to" \
       "install one; pass --base with a python:3.11 image" >&2
  exit 1
fi
if command -v python3 >/dev/null 2>&1; then
  # Keep the interpreter the base ships (e.g. 3.11 on TensorFlow's Ubuntu images): add only its venv.
  pkgs="python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
else
  pkgs="python3"
  [ "$mode" = build ] && pkgs="python3 python3-venv"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # $pkgs is a word list on purpose
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
python3 -c "$need"
