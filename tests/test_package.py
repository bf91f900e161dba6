import subprocess
import sys

import netlapse


def test_import_pulls_in_no_framework_or_plotting():
    code = ("import sys, netlapse; bad=[m for m in ('torch','keras','jax','tensorflow','matplotlib',"
            "'zarr','pandas') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_all_is_explicit_and_resolves():
    for name in netlapse.__all__:
        assert getattr(netlapse, name) is not None, name
    import types

    public = {n for n in dir(netlapse)
              if not n.startswith("_") and not isinstance(getattr(netlapse, n), types.ModuleType)}
    undeclared = public - set(netlapse.__all__)
    assert not undeclared, f"public names missing from __all__: {sorted(undeclared)}"
