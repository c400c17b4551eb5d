"""builder: declarative, locked, verifiable AI container builds for Jetson and x86 CUDA."""

__version__ = "0.1.0"
