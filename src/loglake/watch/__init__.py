"""The daemon: `loglake watch` keeps the batch pipeline running as jobs write their logs.

``engine`` follows files (``tailer``, ``identity``, ``follow``) and hands rows to the
``flusher``; ``daemon`` runs it in supervised threads fed by ``scanner`` (watchdog events and
rescans); ``status`` and ``metrics_http`` report on it.
"""

from __future__ import annotations
