"""One look at an object-store lake before a retention or housekeeping run touches it.

Each table read through deltalake retries an unreachable store for seconds and then says
only "Generic S3 error"; housekeeping reads a dozen tables twice. One listing of the lake's
root through fsspec costs one quick attempt and names the endpoint, the bucket and the fix,
so a run against a store that is down fails in seconds with one line.
"""

from __future__ import annotations

from loglake.config import Config
from loglake.errors import ExitCode, LakeError, SourceError
from loglake.lake.tables import is_remote, normalize_lake
from loglake.objstore.filesystem import call, open_fs

PROBE_RETRY_FOR = 5.0  # a blip is waited out; an outage is the next scheduled run's


class LakeUnreachable(LakeError):
    """The lake's store cannot be reached or used now; nothing was changed."""

    exit_code = ExitCode.PARTIAL


def check_lake(config: Config, *, retry_for: float = PROBE_RETRY_FOR) -> None:
    """Raise ``LakeUnreachable`` when an object-store lake cannot be listed now."""
    lake = normalize_lake(config.lake)
    if not is_remote(lake):
        return
    options = config.storage_options or None
    try:
        fs = open_fs(lake, options)
        root = fs._strip_protocol(lake)
        try:
            call(lambda: fs.ls(root, detail=False), lake, options, retry_for=retry_for)
            return
        except FileNotFoundError:
            pass  # a lake not created yet is fine (the run creates it); a missing bucket is not
        bucket = root.split("/", 1)[0]
        try:
            call(lambda: fs.ls(bucket, detail=False), lake, options, retry_for=retry_for)
        except FileNotFoundError:
            raise LakeUnreachable(
                f"the lake {lake}: the bucket {bucket!r} does not exist",
                fix="create it or fix the lake setting; nothing was changed",
            ) from None
    except SourceError as exc:
        rest = exc.message.removeprefix(f"{lake}: ")
        fix = (exc.fix or "check the lake setting").replace("sources.paths", "the lake setting")
        if "nothing was lost" not in fix:
            fix += "; nothing was changed"
        raise LakeUnreachable(f"the lake {lake}: {rest}", fix=fix) from exc
