"""Print the package's runtime requirements from setup.cfg, one a line, with the TensorFlow
distribution swapped for the image's one.

setup.cfg pins ``tensorflow-cpu`` (small, right for laptops and CPU pipelines). The GPU image needs
``tensorflow`` at the same version, so both Dockerfiles install these requirements and then the
package's wheel with ``--no-deps``: one version pin, in setup.cfg, for both images.

Usage: python3 requirements.py SETUP_CFG --tensorflow tensorflow-cpu|tensorflow|'tensorflow[and-cuda]'
"""
from __future__ import annotations

import argparse
import configparser
import re
import sys
from pathlib import Path

# Any TensorFlow distribution name, followed by its version spec, markers or nothing.
_TF = re.compile(r"^tensorflow(?:-cpu|-gpu)?(?:\[[^\]]*\])?(?=\s*(?:[=<>!~;]|$))", re.IGNORECASE)


def requirements(setup_cfg: Path, tensorflow: str) -> list[str]:
    """Return ``install_requires`` from ``setup_cfg`` with TensorFlow renamed to ``tensorflow``.

    Raises:
        ValueError: setup.cfg has no ``[options] install_requires`` or no TensorFlow requirement.
    """
    parser = configparser.ConfigParser()
    if not parser.read(setup_cfg):
        raise ValueError(f"{setup_cfg}: cannot read it")
    try:
        raw = parser["options"]["install_requires"]
    except KeyError:
        raise ValueError(f"{setup_cfg}: no [options] install_requires") from None
    out: list[str] = []
    found = False
    for line in raw.splitlines():
        req = line.split("#", 1)[0].strip()
        if not req:
            continue
        if _TF.match(req):
            req = _TF.sub(tensorflow, req, count=1)
            found = True
        out.append(req)
    if not found:
        raise ValueError(f"{setup_cfg}: install_requires names no tensorflow package to swap")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("setup_cfg", type=Path)
    ap.add_argument("--tensorflow", default="tensorflow-cpu",
                    help="TensorFlow distribution to install (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        print("\n".join(requirements(args.setup_cfg, args.tensorflow)))
    except ValueError as e:
        print(f"requirements.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
