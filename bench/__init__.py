"""Benchmarks: jobstore's `JobStore` beside the raw drivers and the libraries people use instead.

``python -m bench`` runs the full suite once, prints the tables and writes ``docs/benchmarks.md``
and ``docs/benchmarks.png``; ``python -m bench --smoke`` runs every benchmark a few times to show
it works (no timing is asserted anywhere). Everything is measured in one run, interleaved over
several repetitions, so the machine's noise touches every contender alike and the ratios hold.
"""
