"""Lesion photo intake: verify, sanitize and re-encode uploads (`intake`), and judge their quality (`quality`)."""
