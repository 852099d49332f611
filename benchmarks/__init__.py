"""Benchmarks (`dermalink bench triton`, `dermalink bench api`): tools, not part of the server package."""
