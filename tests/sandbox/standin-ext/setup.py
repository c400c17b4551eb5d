"""A small C extension standing in for vLLM / CTranslate2 in the sandbox: built from source in a
builder stage, it records the MAX_JOBS it was built with so tests can see the plan's value arrive.

Its wheel also carries a payload of seeded random bytes (incompressible, the same on every build) so
that it weighs megabytes, as a real source-built wheel does: a wheel left in an image layer shows."""

import os
import random
from pathlib import Path

from setuptools import Extension, setup

PAYLOAD_BYTES = 8 * 1024 * 1024
payload = Path("standin_ext_payload")
payload.mkdir(exist_ok=True)
(payload / "__init__.py").write_text('"""Seeded random bytes that give the stand-in wheel its weight."""\n')
(payload / "payload.bin").write_bytes(random.Random(14).randbytes(PAYLOAD_BYTES))

setup(
    name="standin-ext",
    version="1.0.0",
    packages=["standin_ext_payload"],
    package_data={"standin_ext_payload": ["payload.bin"]},
    ext_modules=[
        Extension(
            "standin_ext",
            sources=["standin_ext.c"],
            define_macros=[("BUILT_WITH_MAX_JOBS", os.environ.get("MAX_JOBS", "0"))],
        )
    ],
)
