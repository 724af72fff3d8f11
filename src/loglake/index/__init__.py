"""The batch indexer: existing logs in, lake rows out."""
