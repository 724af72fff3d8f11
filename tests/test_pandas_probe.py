"""An indexing process never imports pandas, and pandas still works when asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pandas")

CORPUS = Path(__file__).parent / "corpus"


def run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_index_command_does_not_import_pandas(tmp_path: Path) -> None:
    log = next(CORPUS.glob("*/stdout.log"))
    out = run(
        f"""
        import sys
        from loglake.cli import main
        assert main(["index", "--finished", "-q", "--lake", {str(tmp_path / "lake")!r},
                     {str(log)!r}]) == 0
        print("pandas" in sys.modules)
        """
    )
    assert out == "False"


def test_pandas_still_converts_after_the_probe() -> None:
    out = run(
        """
        import sys
        from loglake.index.pandas_probe import skip_pandas_probe
        skip_pandas_probe()
        import pyarrow as pa
        assert pa.array(["a", None]).to_pylist() == ["a", None]
        assert "pandas" not in sys.modules
        import pandas as pd
        frame = pa.table({"x": [1, 2]}).to_pandas()
        back = pa.Table.from_pandas(pd.DataFrame({"y": ["a"]}), preserve_index=False)
        print(frame["x"].sum(), back.column("y").to_pylist(), pa.array(pd.Series([1.5])).type)
        """
    )
    assert out == "3 ['a'] double"
