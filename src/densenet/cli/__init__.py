"""The ``densenet`` command line: a thin layer over the Python API."""
