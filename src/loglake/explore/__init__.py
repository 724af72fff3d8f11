"""Exploring the lake: list, show, compare, rank runs; tags and notes; plots and reports.

Every command is a function over a DuckDB connection from ``session.open_lake``; the CLI
(``explore/cli.py``) only parses arguments and prints what these functions return.
"""
