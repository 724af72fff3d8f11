"""Built-in Python parsers: each module exposes ``PARSERS``, a list of parser instances."""
