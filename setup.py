"""Builds refnet's Cython kernels: kernels/<name>.pyx -> refnet._kernels_<name>.

Float arithmetic must stay exactly IEEE: no -ffast-math, and -ffp-contract=off so the
compiler never fuses a multiply and an add into an FMA (LiteRT's reference path does not).
"""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-strict-aliasing"]

extensions = [
    Extension(
        f"refnet._kernels_{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include(), "kernels"],
        extra_compile_args=COMPILE_ARGS,
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
