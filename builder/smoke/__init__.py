"""The smoke stage: a device-side runner (`runner.py`) copied into images and run on the target GPU.

`runner.py` needs only the Python standard library and torch, so this package imports nothing: the
builder renders the runner's file into each image and reads back the `smoke.json` it writes.
"""
