"""Benchmarks: `dermalink bench triton` (perf_analyzer vs in-process ONNX Runtime); room for `bench api`."""
