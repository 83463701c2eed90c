"""`python tests/model/cli_stand_in.py train ...` = `python -m pix2pix train ...`, with the
stand-in make_dataset injected only while pix2pix.data.dataset does not exist yet."""
import sys
import types

try:
    import pix2pix.data.dataset  # noqa: F401
except ImportError:
    from tests.model.conftest import _stand_in_make_dataset
    module = types.ModuleType("pix2pix.data.dataset")
    module.make_dataset = _stand_in_make_dataset
    sys.modules["pix2pix.data.dataset"] = module

from pix2pix.cli import main  # noqa: E402

main(sys.argv[1:])
