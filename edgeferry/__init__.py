"""edgeferry: testbed orchestration for secure service migration between edge hosts."""

__version__ = "0.1.0"
