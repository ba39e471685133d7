"""Benchmarks shipped with the package (``ssmad bench ...``; thin scripts in ``benchmarks/`` call them)."""
