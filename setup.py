"""Build of the optional compiled summary kernel (netlapse/_csummary.c).

Everything else about the package is in pyproject.toml. The extension is optional: where it
cannot be compiled (no C compiler, no Python headers) the install still succeeds and
netlapse._stats falls back to numpy.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# IEEE results exactly as numpy computes them: no -ffast-math, no fused multiply-add
# (-ffp-contract=off), so the histogram bin of every value is rounded as numpy rounds it.
_GCC_LIKE = ["-O3", "-ffp-contract=off", "-fno-fast-math"]
_MSVC = ["/O2", "/fp:precise"]


class _BuildExt(build_ext):
    def build_extensions(self):
        flags = _MSVC if self.compiler.compiler_type == "msvc" else _GCC_LIKE
        for ext in self.extensions:
            ext.extra_compile_args = list(flags) + list(ext.extra_compile_args or [])
        super().build_extensions()


setup(
    ext_modules=[Extension("netlapse._csummary", ["netlapse/_csummary.c"], optional=True)],
    cmdclass={"build_ext": _BuildExt},
)
