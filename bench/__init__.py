"""Benchmarks of the gateway and the local UCD (not part of the test run).

Each module has ``run() -> dict`` that measures, prints markdown tables and returns the
figures; ``python -m bench`` runs them all (``make bench``). Results with the machine they
were measured on are kept in ``bench/README.md``.
"""
