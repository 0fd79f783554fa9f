"""assistantd benchmarks (issue 7): run `python -m bench.run_all [--quick]`."""
