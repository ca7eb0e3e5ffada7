"""PII/secret redaction recall and precision on real files with planted secrets and emails.

Takes real standard-library files in which the redactor finds nothing, plants emails,
public IPs, AWS keys, GitHub tokens, passwords and private keys at known lines (plus
private IPs, which must be left alone), and counts what was replaced. Baseline in the same
run: the same redactor without the detect-secrets scanner (patterns only).

    python bench/pii_quality.py [--files 300]

Prints one summary line:
    pii_quality: recall ... precision ... | patterns-only recall ... precision ... | ...
"""

from __future__ import annotations

import argparse
import random
import string

from _corpus import corpus
from runstack.datasets_hub.pii import SecretScanner, redact


def _plants(rng: random.Random) -> list[tuple[str, str, bool]]:
    """(line, secret text, whether it must be replaced)."""
    word = lambda n: "".join(rng.choices(string.ascii_lowercase, k=n))  # noqa: E731
    email = f"{word(6)}.{word(5)}@{word(7)}.com"
    public_ip = (
        f"{rng.choice([8, 23, 52, 93, 151])}.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}"
    )
    private_ip = f"10.{rng.randrange(0, 250)}.{rng.randrange(0, 250)}.{rng.randrange(1, 250)}"
    aws = "AKIA" + "".join(rng.choices(string.ascii_uppercase + "234567", k=16))
    github = "ghp_" + "".join(rng.choices(string.ascii_letters + string.digits, k=36))
    password = word(5) + "-" + word(6) + str(rng.randrange(100, 999))
    key_body = "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=64))
    return [
        (f'MAINTAINER = "{email}"', email, True),
        (f'UPSTREAM_HOST = "{public_ip}"', public_ip, True),
        (f'INTERNAL_HOST = "{private_ip}"', private_ip, False),
        (f'AWS_ACCESS_KEY_ID = "{aws}"', aws, True),
        (f'GITHUB_TOKEN = "{github}"', github, True),
        (f'db_password = "{password}"', password, True),
        (f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{key_body}\n-----END RSA PRIVATE KEY-----"""', key_body, True),
    ]


def _score(texts: list[tuple[str, list[tuple[str, str, bool]]]], scanner: SecretScanner | None) -> tuple[float, float]:
    found = planted = replaced = kept_wrongly = 0
    for text, plants in texts:
        out, counts = redact(text, scanner)
        replaced += sum(counts.values())
        for _, secret, positive in plants:
            if positive:
                planted += 1
                found += secret not in out
            else:
                kept_wrongly += secret not in out
    recall = found / planted
    precision = found / replaced if replaced else 1.0
    return recall, min(precision, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(0)
    scanner = SecretScanner()
    clean = [
        t for _, t in corpus(20 << 20, packages=()) if 500 < len(t) < 40_000 and not sum(redact(t, scanner)[1].values())
    ]
    texts = []
    for text in rng.sample(clean, min(args.files, len(clean))):
        lines = text.split("\n")
        plants = _plants(rng)
        for line, _, _ in plants:
            lines.insert(rng.randrange(len(lines) + 1), line)
        texts.append(("\n".join(lines), plants))
    recall, precision = _score(texts, scanner)
    base_recall, base_precision = _score(texts, None)
    print(f"pii_quality: recall {recall:.3f} precision {precision:.3f} | patterns-only recall {base_recall:.3f}"
          f" precision {base_precision:.3f} | {len(texts)} real files, {6 * len(texts)} planted secrets/emails,"
          f" {len(texts)} private IPs that must stay")  # fmt: skip


if __name__ == "__main__":
    main()
