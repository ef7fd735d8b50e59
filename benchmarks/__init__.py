"""Throughput benchmarks for fsrun: encoder per variant and backend, stage breakdown of a real
run, the author's per-window baseline, and memory on short vs long clips.

Run `python -m benchmarks run --help`; results land in benchmarks/results/<machine>/.
"""
