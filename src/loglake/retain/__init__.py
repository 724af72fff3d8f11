"""Retention: raw logs archived before the cluster deletes them, and lake upkeep.

- ``job.run_retention`` — one retention run (also ``loglake retain``);
- ``expiry.logs_near_expiry`` — logs about to expire unarchived (for ``loglake status``);
- ``housekeep.run_housekeeping`` — optimize, vacuum, index retention (``loglake housekeep``);
- ``schedule.start_scheduler`` — both on intervals inside the daemon.

See docs/retention.md.
"""
