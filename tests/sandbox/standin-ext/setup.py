"""A small C extension standing in for vLLM / CTranslate2 in the sandbox: built from source in a
builder stage, it records the MAX_JOBS it was built with so tests can see the plan's value arrive."""

import os

from setuptools import Extension, setup

setup(
    name="standin-ext",
    version="1.0.0",
    ext_modules=[
        Extension(
            "standin_ext",
            sources=["standin_ext.c"],
            define_macros=[("BUILT_WITH_MAX_JOBS", os.environ.get("MAX_JOBS", "0"))],
        )
    ],
)
