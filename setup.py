"""Builds refnet's Cython kernels: kernels/<name>.pyx -> refnet._kernels_<name>.

Float arithmetic must stay exactly IEEE: no -ffast-math, and -ffp-contract=off so the
compiler never fuses a multiply and an add into an FMA (LiteRT's reference path does not).
"""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-strict-aliasing", "-fwrapv", "-Wno-psabi",
                "-fopenmp"]
LINK_ARGS = ["-fopenmp"]
# The fast kernels (kernels/fast*.h) are compiled for several instruction sets and chosen at
# run time (GCC target pragmas + cpuid); the build itself stays generic x86-64 / aarch64.
HEADERS = [str(p.relative_to(HERE)) for p in sorted((HERE / "kernels").glob("*.h"))]

extensions = [
    Extension(
        f"refnet._kernels_{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include(), "kernels"],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS if pyx.stem == "fast" else [],
        depends=(HEADERS if pyx.stem == "fast" else ["kernels/fixedpoint.pxd"]),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted((HERE / "kernels").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["kernels"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
