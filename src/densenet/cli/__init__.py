"""The ``densenet`` command line: a thin layer over the Python API, one module per subcommand.

- :mod:`~densenet.cli.main`: the entry point; turns a :class:`~densenet.errors.DenseNetError` into one ``error:`` line.
- :mod:`~densenet.cli.common`: the parser class, ``--json``/``--debug``/``--threads``, output helpers.
- :mod:`~densenet.cli.config_flags`: ``train``'s flags, generated from the configuration dataclasses.
- ``models``, ``summary``, ``train``, ``evaluate``, ``predict``, ``export``, ``bench``, ``experiment``,
  ``data``: one module each, with ``add_parser(subparsers)`` and ``run(args) -> int``.
"""
