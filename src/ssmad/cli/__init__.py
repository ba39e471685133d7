"""The ``ssmad`` command line (see :mod:`ssmad.cli.main`)."""
