"""The sandbox stack's app layer: proves the C extension built from source works in the image."""

import os

import standin_ext  # type: ignore[import-not-found]  # exists only inside the image

print(
    f"{os.environ.get('SANDBOX_GREETING', 'hi')}: 2 + 3 = {standin_ext.add(2, 3)}, built with MAX_JOBS={standin_ext.max_jobs()}"
)
