"""Redaction quality on real code: damage where nothing was planted, recall per kind where it was.

    python bench/pii_quality.py [--mb 30] [--files 200]

Corpus: every .py file of the standard library and installed packages up to ``--mb`` (none left
out). Damage: the share of lines a redactor changes in that corpus, with a sample of changed
lines. Recall: ``--files`` random files of it, each with one planted item of every kind (tokens
drawn at random per file), counted per kind. Candidates side by side, in the same run:
runstack balanced (the default), runstack strict, detect-secrets used as documented (file
scanning with its default plugins and filters) and CredSweeper (its rules, filters and ML
validation; ``pip install credsweeper``). Prints one summary line per candidate and the
changed-line sample of the default.
"""

from __future__ import annotations

import argparse
import random
import string
import tempfile
import time
from pathlib import Path

from _corpus import corpus
from runstack.datasets_hub.pii import redact

UP, LOW, DIG = string.ascii_uppercase, string.ascii_lowercase, string.digits


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = sum(d if i % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    digits.append((10 - total % 10) % 10)
    text = "".join(map(str, digits))
    return " ".join(text[i : i + 4] for i in range(0, 16, 4))


def plants(rng: random.Random) -> dict[str, tuple[str, str]]:
    """kind -> (line to insert, the text that must not survive)."""
    b64, word = UP + LOW + DIG, lambda n: _r(rng, LOW, n)
    items = {
        "aws_access_key_id": "AKIA" + _r(rng, UP + "234567", 16),
        "aws_secret_access_key": _r(rng, b64 + "/+", 40),
        "github_token": "ghp_" + _r(rng, b64, 36),
        "github_fine_grained": "github_pat_" + _r(rng, b64, 22) + "_" + _r(rng, b64, 59),
        "github_oauth": "gho_" + _r(rng, b64, 36),
        "github_app": "ghs_" + _r(rng, b64, 36),
        "gitlab_token": "glpat-" + _r(rng, b64, 20),
        "sendgrid_key": "SG." + _r(rng, b64, 22) + "." + _r(rng, b64, 43),
        "slack_token": f"xoxb-{_r(rng, DIG, 12)}-{_r(rng, DIG, 13)}-{_r(rng, b64, 24)}",
        "slack_webhook": f"https://hooks.slack.com/services/T{_r(rng, UP + DIG, 8)}/B{_r(rng, UP + DIG, 8)}/{_r(rng, b64, 24)}",
        "stripe_key": "sk_live_" + _r(rng, b64, 24),
        "google_api_key": "AIza" + _r(rng, b64, 35),
        "openai_key": "sk-proj-" + _r(rng, UP, 4) + _r(rng, DIG, 4) + _r(rng, b64, 40),
        "private_key_rsa": _r(rng, b64 + "+/", 64),
        "private_key_openssh": _r(rng, b64 + "+/", 64),
        "jwt": "eyJ" + _r(rng, b64, 20) + ".eyJ" + _r(rng, b64, 30) + "." + _r(rng, b64, 43),
        "url_password": word(4) + _r(rng, DIG, 2) + "!" + word(3) + "#" + _r(rng, DIG, 2),
        "password_assignment": word(5) + "-" + word(5) + _r(rng, DIG, 3),
        "env_secret": _r(rng, b64, 18),
        "email": f"{word(6)}.{word(5)}@{word(7)}.com",
        "ipv4": f"{rng.choice([8, 23, 52, 93, 151])}.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}",
        "ipv6": f"2001:4860:{rng.randrange(4096, 65535):x}::{rng.randrange(4096, 65535):x}",
        "credit_card": _card(rng),
        "phone": f"+1 ({rng.randrange(200, 999)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}",
    }  # fmt: skip
    lines = {
        "aws_secret_access_key": f'aws_secret_access_key = "{items["aws_secret_access_key"]}"',
        "private_key_rsa": f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{items["private_key_rsa"]}\n-----END RSA PRIVATE KEY-----"""',
        "private_key_openssh": f'K2 = """-----BEGIN OPENSSH PRIVATE KEY-----\n{items["private_key_openssh"]}\n-----END OPENSSH PRIVATE KEY-----"""',
        "url_password": f'DB = "mysql://root:{items["url_password"]}@db.internal/app"',
        "password_assignment": f'db_password = "{items["password_assignment"]}"',
        "env_secret": f'# .env\nDB_PASS={items["env_secret"]}',
        "phone": f'# phone: {items["phone"]}',
        "credit_card": f'card = "{items["credit_card"]}"',
    }  # fmt: skip
    return {kind: (lines.get(kind, f'{kind.upper()} = "{value}"'), value) for kind, value in items.items()}


class DetectSecrets:
    """detect-secrets as documented: scan a file with its default plugins and filters."""

    name = "detect-secrets"

    def __init__(self) -> None:
        from detect_secrets import SecretsCollection
        from detect_secrets.settings import default_settings

        self.collection_type, self.settings = SecretsCollection, default_settings
        self.folder = tempfile.mkdtemp()

    def __call__(self, text: str) -> str:
        path = Path(self.folder) / "f.py"
        path.write_text(text)
        secrets = self.collection_type()
        with self.settings():
            secrets.scan_file(str(path))
        values = sorted({s.secret_value for _, s in secrets if s.secret_value}, key=len, reverse=True)
        for value in values:
            text = text.replace(value, "<SECRET>")
        return text


class CredSweeperScan:
    """CredSweeper (Samsung) as documented: scan a file's lines with its rules and filters, then
    its ML validation (``post_processing``) over the candidates; every value it reports is replaced."""

    name = "credsweeper"

    def __init__(self) -> None:
        import logging

        from credsweeper import CredSweeper

        logging.getLogger("credsweeper").setLevel(logging.ERROR)
        self.make = CredSweeper

    def __call__(self, text: str) -> str:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from credsweeper.file_handler.string_content_provider import StringContentProvider

            sweeper = self.make()  # a fresh one per file: its credential manager accumulates
            sweeper.scan([StringContentProvider(text.split("\n"), file_path="f.py")], None)
            sweeper.post_processing(None)
        values = sorted({ld.value for c in sweeper.credential_manager.get_credentials() for ld in c.line_data_list
                         if ld.value}, key=len, reverse=True)  # fmt: skip
        for value in values:
            text = text.replace(value, "<SECRET>")
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=30)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    files = corpus(args.mb << 20)
    size = sum(len(t.encode()) for _, t in files)
    candidates = {"runstack balanced": lambda t: redact(t, "balanced")[0],
                  "runstack strict": lambda t: redact(t, "strict")[0], "detect-secrets": DetectSecrets()}  # fmt: skip
    try:
        candidates["credsweeper"] = CredSweeperScan()
    except ImportError:
        print("credsweeper is not installed (pip install credsweeper): measured without it")
    rng = random.Random(0)
    sample = rng.sample(files, min(args.files, len(files)))
    planted = []
    for _, text in sample:
        lines, kinds = text.split("\n"), plants(rng)
        for line, _ in kinds.values():
            lines.insert(rng.randrange(len(lines) + 1), line)
        planted.append(("\n".join(lines), kinds))
    changed_sample: list[str] = []
    for name, run in candidates.items():
        start = time.process_time()
        changed = total = 0
        scanned = 0
        for _, text in files:  # every file, for every candidate
            out = run(text)
            scanned += len(text.encode())
            before, after = text.split("\n"), out.split("\n")
            total += len(before)
            diff = [a for a, b in zip(before, after, strict=False) if a != b]
            changed += len(diff)
            if name == "runstack balanced" and len(changed_sample) < 5:
                changed_sample += [d.strip()[:100] for d in diff[: 5 - len(changed_sample)]]
        rate = scanned / 1e6 / max(time.process_time() - start, 1e-9)
        caught: dict[str, int] = {}
        for text, kinds in planted:
            out = run(text)
            for kind, (_, secret) in kinds.items():
                caught[kind] = caught.get(kind, 0) + (secret not in out)
        per_kind = {k: v / len(planted) for k, v in caught.items()}
        worst = sorted(per_kind.items(), key=lambda kv: kv[1])[:3]
        overall = sum(per_kind.values()) / len(per_kind)
        print(f"pii_quality[{name}]: recall {overall:.3f} (lowest: {', '.join(f'{k} {v:.2f}' for k, v in worst)}) | "
              f"damage {changed / total:.4%} of {total:,} lines ({changed} changed) | {rate:.1f} MB/s per core | "
              f"corpus {size / 1e6:.0f} MB, {len(files)} files, {len(planted)} with {len(per_kind)} kinds planted")  # fmt: skip
    print("changed lines (runstack balanced, no planted item): " + (" | ".join(changed_sample) or "none"))


if __name__ == "__main__":
    main()
