"""A pure-Python stand-in built from source in its own builder stage, beside standin-ext."""


def greet(name: str) -> str:
    return f"hello, {name}"
