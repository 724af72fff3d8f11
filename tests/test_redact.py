"""Secrets are redacted from archived text and parameters; ordinary ML settings are not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.redact import StreamRedactor, is_secret_key, redact_param, redact_text

SECRETS = [
    # (line, the secret that must disappear, what must stay)
    ("hf_token=hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "AbCdEfGhIjKlMnOpQrStUvWxYz", "hf_token="),
    ("--hf_token abc123def456 --lr 0.1", "abc123def456", "--lr 0.1"),
    ("--api-key=zz9plural --epochs 3", "zz9plural", "--epochs 3"),
    ('{"api_key": "k-123456", "lr": 0.001}', "k-123456", '"lr": 0.001'),
    ("Namespace(password='hunter22', batch_size=4)", "hunter22", "batch_size=4"),
    ("WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567", "0123456789abcdef", "WANDB_API_KEY"),
    ("db_password: s3cr3t!", "s3cr3t!", "db_password"),
    ("client_secret = 'abcdef-ghij'", "abcdef-ghij", "client_secret"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "AWS_"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "aws_"),
    ("using key AKIAIOSFODNN7EXAMPLE for s3", "AKIAIOSFODNN7EXAMPLE", "for s3"),
    ("clone with ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij", "clone with"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "github_pat_11ABC", "pat "),
    ("slack xoxb-123456789012-abcdefghijkl", "xoxb-123456789012", "slack"),
    ("OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz012345", "sk-proj-abcdefghij", "OPENAI"),
    ("key sk-abcdefghijklmnopqrstuvwx1234", "sk-abcdefghijklmnopqrstuvwx", "key "),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "jwt ",
    ),
    ("Authorization: Bearer abcdef.ghijkl-mnop", "abcdef.ghijkl-mnop", "Authorization"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNz'", "dXNlcjpwYXNz", "curl"),
    ("fetch https://bob:p4ssw0rd@example.com/data.csv", "p4ssw0rd", "bob:"),
    ("postgres://svc:Xy7!pw@db:5432/runs", "Xy7!pw", "@db:5432/runs"),
    ("https://host/x?token=tok123abc&page=2", "tok123abc", "page=2"),
    # punctuation inside an unquoted value is part of it unless another key follows
    ("password=p@ss;word lr=0.1", ";word", "lr=0.1"),
    ("DB_PASSWORD=a,b)c]d&e rest", "b)c]d&e", "rest"),
    ("token=tok123;lr=0.1", "tok123", ";lr=0.1"),
    ("Namespace(password=hunter22, batch_size=4)", "hunter22", ", batch_size=4)"),
    ("{'secret': xyz789}", "xyz789", "}"),
]

HARMLESS = [
    "step 100 loss=0.25 max_tokens=512 tokens_per_second=1234.5",
    "tokenizer=gpt2 pad_token: <pad> eos_token=</s> bos_token_id=1",
    "use_auth_token=True token=None password=",
    "num_tokens: 20480 total_tokens=1e6",
    "PWD=/home/alice/project OLDPWD=/home/alice",
    "see https://example.com/docs and http://localhost:8080/path",
    "keyboard interrupt, key=val secretary=bob",
]


@pytest.mark.parametrize(("line", "secret", "kept"), SECRETS)
def test_secrets_are_replaced(line: str, secret: str, kept: str) -> None:
    out, n = redact_text(line)
    assert secret not in out
    assert kept in out
    assert "[REDACTED" in out
    assert n >= 1


@pytest.mark.parametrize("line", HARMLESS)
def test_ordinary_settings_are_kept(line: str) -> None:
    assert redact_text(line) == (line, 0)


def test_private_key_blocks_across_lines_and_chunks() -> None:
    text = (
        b"start\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabcdefgh\n"
        b"-----END RSA PRIVATE KEY-----\nafter\n"
    )
    r = StreamRedactor()
    out = b"".join(r.feed(text[i : i + 7]) for i in range(0, len(text), 7)) + r.flush()
    assert b"MIIEowIBAAKCAQEA" not in out and b"abcdefgh" not in out
    assert out.startswith(b"start\n-----BEGIN RSA PRIVATE KEY-----\n")
    assert out.endswith(b"-----END RSA PRIVATE KEY-----\nafter\n")
    assert r.count == 1


def test_stream_keeps_bytes_outside_secrets_identical() -> None:
    body = b"ok \xff\xfe invalid utf8\npassword=hunter22\n" + b"x=1\n" * 5000 + b"no newline"
    r = StreamRedactor()
    out = b"".join(r.feed(body[i : i + 4096]) for i in range(0, len(body), 4096)) + r.flush()
    assert out == body.replace(b"hunter22", b"[REDACTED]")
    assert r.count == 1


def test_secret_split_across_chunks_is_still_found() -> None:
    line = b"loss=1\nexport HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567\n"
    for cut in range(len(line)):
        r = StreamRedactor()
        out = r.feed(line[:cut]) + r.feed(line[cut:]) + r.flush()
        assert b"AbCdEfGh" not in out, cut


def test_params_helpers() -> None:
    assert is_secret_key("hf_token") and is_secret_key("WANDB_API_KEY")
    assert is_secret_key("optimizer.password") and is_secret_key("apiKey")
    assert not is_secret_key("pad_token") and not is_secret_key("max_tokens")
    assert not is_secret_key("tokenizer") and not is_secret_key("learning_rate")
    assert redact_param("hf_token", "hf_abc") == "[REDACTED]"
    assert redact_param("use_auth_token", True) is True
    assert redact_param("lr", 0.1) == 0.1
    assert redact_param("cmd", "train.py --password hunter22") == "train.py --password [REDACTED]"
    assert redact_param("pad_token", "<pad>") == "<pad>"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=500))
def test_chunking_never_changes_the_result(data: bytes, step: int) -> None:
    data = data + b"\npassword=abcdef12 and AKIAIOSFODNN7EXAMPLE\n" + data
    whole = StreamRedactor()
    expected = whole.feed(data) + whole.flush()
    parts = StreamRedactor()
    got = b"".join(parts.feed(data[i : i + step]) for i in range(0, len(data), step))
    assert got + parts.flush() == expected
    assert b"abcdef12" not in expected or b"password=abcdef12" not in expected


def test_indexed_lake_holds_no_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """End to end: params, facts (the command line) and error lines all pass one redaction."""
    import duckdb

    from loglake.config import Config
    from loglake.index.runner import run_index
    from loglake.lake.tables import table_files

    secrets = [
        "hf_abcdefghijklmnopqrstuvwxyzABCDEF",
        "hunter2",
        "sk-abcdefghijklmnopqrstuvwxyz012345",
    ]
    log = tmp_path / "train.log"
    log.write_text(
        f"python train.py --lr 0.01 --hf_token {secrets[0]} --password {secrets[1]}\n"
        f'{{"api_key": "{secrets[2]}", "batch_size": 32}}\n'
        "epoch 1 loss=0.5\n"
    )
    cfg = Config(lake=str(tmp_path / "lake"))
    run_index(cfg, [str(log)], finished=True)
    con = duckdb.connect()
    seen = []
    for table in ("params", "runs"):
        files = table_files(cfg.lake, table)
        assert files, table
        rows = con.execute(f"SELECT * FROM read_parquet({files!r})").fetchall()
        seen.append(repr(rows))
    text = "\n".join(seen)
    assert "0.01" in text and "32" in text
    for s in secrets:
        assert s not in text


def test_parse_error_lines_are_redacted_too() -> None:
    from loglake.parse.records import Emitter

    out = Emitter()
    out.error(
        0, "bad line", "login --password hunter22 --token ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    )
    (line,) = out.errors.data["line"]
    assert "hunter22" not in line and "ghp_abcdefghij" not in line and "login" in line
