"""Processes that the tests and the benchmark both start: the stand-in for mesibo, gunicorn, nginx."""
