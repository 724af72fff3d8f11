"""The lake: Delta tables of runs, params, metrics and facts, written atomically."""
