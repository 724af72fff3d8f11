"""Parsers: turn decoded log lines into records (metrics, params, status, facts)."""
