"""Run identity: which run a log file belongs to."""
