"""Redaction catches each kind of secret and personal data, keeps look-alikes, is deterministic,
and never stops a Python file from parsing."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runstack.datasets_hub.pii import PiiStep, redact
from runstack.datasets_hub.record import SourceFile

from ..conftest import ROOT

PLANTED = {
    "aws_access_key_id": ["key = 'AKIAIOSFODNN7EXAMPLF'", "ASIAY34FZKBOKMUTVV7A"],
    "aws_secret_access_key": ["aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ'"],
    "github_token": [
        'GITHUB_TOKEN = "ghp_JBd0Kh8oOOL8dKLzdocJ2isAjIhKtJ0RlgLK"',
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789abcd_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY012",
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
    ],
    "gitlab_token": ["token: glpat-xXyY12345678abcdEFGH"],
    "sendgrid_key": ["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"],
    "slack_token": ["xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"],
    "slack_webhook": ["https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"],
    "stripe_key": ["stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'", "rk_test_51H8aBcDeFgHiJkLmN"],
    "google_api_key": ["AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"],
    "openai_key": ["OPENAI = 'sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW'"],
    "private_key": [
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY\n-----END EC PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF0\n-----END PGP PRIVATE KEY BLOCK-----",
    ],
    "jwt": ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
    "url_password": ["mysql://root:p4ss!w0rd#9x@db.internal/app", "postgresql://alice:S3cr3t%21@10.1.2.3:5432/db"],
    "password_assignment": ["db_password = 'correct-horse-42'", '"password": "Tr0ub4dor&3"', "PWD := 'h0nk-h0nk'"],
    "env_secret": ["DB_PASS=aV3ryS3cret", "export API_TOKEN=12ab34cd56ef78gh"],
    "email": ["write to jane.roe@corp.io please", "maintainer = 'Bob Smith <bob@smith.de>'"],
    "ipv4": ["server = '8.34.208.4'", "ping 52.94.236.248 now"],
    "ipv6": ["addr = '2001:4860:4860::8888'"],
    "credit_card": ["card = '4111 1111 1111 1111'", "cc_number = 5500005555555559"],
    "phone": ["phone: +1 (415) 555-0132", "Tel. +44 20 7946 0958"],
}
KEPT = [
    "maxiset = max(isets, key=len)", "from .token import Token", "Note that the authors propose a further refinement",
    '"https://networkx.org/documentation/latest/release/release_3.4.html"', "# RFC 5445 3.3.10: ...",
    "y = x@self.weight", '__version__ = "1.2.3.4"', "pkg==2.0.1.3", "git@github.com:org/repo.git",
    'commit = "9fceb02d0ae598e95dc970b74767f19372d61af8"', 'sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',
    "contact noreply@github.com", "see user@example.com", "hosts = ['10.0.0.1', '127.0.0.1', '192.0.2.4', '::1']",
    "password = 'changeme'", "password = os.environ['PASSWORD']", "token = get_token(user)", "api_key = '<your key>'",
    "std::vector<int> v; a::b::c();", "versions = ['3.1.1.6', '2.7.2.2']", "net = '2001:db8:aaaa::/48'",
    "tokenizer: 'tokenizers.Tokenizer'", "token_range = '%d,%d-%d,%d:'", "INCORRECT_PASSWD = 'Incorrect'",
    "url = 'http://user:pass/word@localhost:22'", "timeout = 1234567890123456", "pad = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'",
    "secret_name = 'my_secret_name_in_vault'",
]  # fmt: skip


@pytest.mark.parametrize("kind", list(PLANTED))
def test_every_planted_kind_is_replaced(kind):
    for text in PLANTED[kind]:
        out, items = redact(text)
        assert items and items[0]["kind"] == kind, (text, out, items)
        for item in items:
            assert out[item["start"] : item["end"]].startswith("<")


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_and_ordinary_code_are_left_alone(text):
    assert redact(text) == (text, []), text


@pytest.mark.parametrize("newline", ["\r", "\u2028", "\r\n"])
def test_any_line_ending_still_finds_secrets(newline):
    text = newline.join(["x = 1", "aws = 'AKIAIOSFODNN7EXAMPLF'", 'tok = "ghp_JBd0Kh8oOOL8dKLzdocJ2isAjIhKtJ0RlgLK"'])
    out, items = redact(text)
    assert [i["kind"] for i in items] == ["aws_access_key_id", "github_token"] and "AKIA" not in out


def test_modes_and_switches():
    text = "blob = 'Zm9vYmFyQmF6MTIzNDU2Nzg5MGFiY2RlZkdISUpLTA'\nkey = 'Zm9vYmFyQmF6MTIzNDU2Nzg5MGFiY2RlZkdISUpLTA'"
    assert [i["kind"] for i in redact(text, "strict")[1]] == ["high_entropy_string", "high_entropy_string"]
    assert [i["kind"] for i in redact(text, "balanced")[1]] == ["high_entropy_string"]  # only where a key can stand
    assert redact(text, "off") == (text, [])
    email = "mail jane.roe@corp.io"
    assert redact(email, disabled=frozenset({"email"})) == (email, [])


def test_a_python_file_that_parsed_still_parses():
    source = "KEY = AKIAIOSFODNN7EXAMPLF\nprint(jane.roe@corp.io)\n"
    assert ast.parse(source) is not None or True
    out, items = redact(source, python=True)
    ast.parse(out)
    assert items and "AKIA" not in out and "REDACTED_KEY" in out


def test_redacting_a_real_corpus_keeps_every_python_file_parseable():
    import email

    folder = Path(email.__file__).parent.parent  # the standard library: real code, nothing planted
    changed_lines = total_lines = broken = 0
    for path in sorted(folder.glob("*.py"))[:400]:
        text = path.read_text(encoding="utf-8", errors="replace")
        out, items = redact(text, python=True)
        total_lines += text.count("\n") + 1
        if items:
            changed_lines += sum(1 for a, b in zip(text.splitlines(), out.splitlines(), strict=False) if a != b)
            try:
                ast.parse(text)
            except SyntaxError:
                continue
            try:
                ast.parse(out)
            except SyntaxError:
                broken += 1
    assert broken == 0 and changed_lines / total_lines <= 0.001, (changed_lines, total_lines)


def test_the_same_input_gives_the_same_bytes_under_any_hash_seed():
    text = "\n".join(t for texts in PLANTED.values() for t in texts) + "\n" + "\n".join(KEPT)
    code = "import sys; from runstack.datasets_hub.pii import redact; sys.stdout.write(repr(redact(sys.stdin.read())))"
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "src")}
        outs.add(subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, env=env,
                                check=True).stdout)  # fmt: skip
    assert len(outs) == 1


def test_the_step_keeps_the_original_blob_id_and_the_published_length():
    record = SourceFile(content="db_password = 'correct-horse-42'\n", path="a.py", repo_name="o/r", blob_id="b" * 40,
                        length_bytes=33)  # fmt: skip
    step = PiiStep()
    (out,) = list(step.run([record]))
    assert out.blob_id == "b" * 40 and out.content == "db_password = '<PASSWORD>'\n"
    assert out.length_bytes == len(out.content) and out.pii == [{"kind": "password_assignment", "start": 15, "end": 25}]


def test_scanning_only_candidate_lines_finds_what_a_full_scan_finds(monkeypatch):
    import runstack.datasets_hub.pii as pii

    texts = [
        'db = "mysql://root:p4ss!w0rd#9x@db.acme-corp.io/app"\nx = 1\n',
        "contact = 'ops.team@acme-tools.io'  # phone: +1 415 555 0134\n@decorator\ndef f(): pass\n",
        "İstanbul İzmir\nsecret_token = 'Zx9vQ2mN7pL4kR8sT1wY'\napi_key=\n  \"Zx9vQ2mN7pL4kR8sT1wY5\"\n",
        "card 4111 1111 1111 1111 and ip 93.184.216.34 or 2001:4860:4860::8888\n" * 3,
        "PRIVATE_KEY = 'Zx9vQ2mN7pL4kR8sT1wYaa'; access_key: 'Qw8eR7tY6uI5oP4aS3dF'\n",
        # non-ASCII before the digits (lines found on a one-byte-per-character copy), dashes, U+2028
        "naïve café 😀 card 4111-1111-1111-1111\u2028ip 93.184.216.34\n版本 5500 0055 5555 5559\n",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc and ASIAJ7Q2EXAMPLE7QZ7Q at fe80::1 or 2a00:1450:4001:80b::200e\n",
    ]
    fast = [pii.find_spans(t, mode) for t in texts for mode in ("balanced", "strict")]
    monkeypatch.setattr(pii, "_matches", lambda d, text, haystack: d.pattern.finditer(text))
    full = [pii.find_spans(t, mode) for t in texts for mode in ("balanced", "strict")]
    assert fast == full
    assert any(kind == "email" for spans in fast for _, _, kind, _ in spans)
    assert any(kind == "secret_assignment" for spans in fast for _, _, kind, _ in spans)
    found = {kind for spans in fast for _, _, kind, _ in spans}
    assert {"credit_card", "ipv4", "ipv6", "stripe_key"} <= found
