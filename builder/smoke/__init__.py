"""The smoke stage: the image (or a bare-metal environment) proves on its device, with numbers,
that it works and runs as fast as the hardware allows.

`runner.py` is the device side: it needs only the Python standard library and torch, is rendered
into every image (/opt/builder/smoke/runner.py) and runs on its own. `spec.py` turns the catalogue
and the lock into the runner's spec (pure); `run.py` runs the runner here or in an image.
"""
