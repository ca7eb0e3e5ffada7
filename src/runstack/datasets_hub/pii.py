"""PII and secret redaction: emails, public IP addresses, keys, tokens and passwords.

Emails and IPs are found with patterns (private, loopback, link-local and reserved
addresses are left alone); secrets with detect-secrets' plugins (AWS, GitHub, Slack,
private keys, JWTs, keyword assignments, high-entropy strings), run only on lines a cheap
pre-filter flags. Replacements: ``<EMAIL>``, ``<IP_ADDRESS>``, ``<KEY>``, ``<PASSWORD>``.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

from runstack.datasets_hub.pipeline import PipelineStep
from runstack.datasets_hub.record import SourceFile

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])")
IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
SUSPECT_LINE = re.compile(r"(?i)key|token|secret|passw|pwd|auth|credential|BEGIN [A-Z ]*PRIVATE|AKIA|ghp_|gho_|xox[abp]-|"
                          r"eyJ[A-Za-z0-9]|[A-Za-z0-9+/]{32,}")  # fmt: skip
PLUGINS = [{"name": n} for n in ("AWSKeyDetector", "GitHubTokenDetector", "SlackDetector", "PrivateKeyDetector",
                                 "JwtTokenDetector", "StripeDetector", "KeywordDetector", "BasicAuthDetector")]  # fmt: skip
PLUGINS += [{"name": "Base64HighEntropyString", "limit": 4.5}, {"name": "HexHighEntropyString", "limit": 3.0}]
_DOTTED = re.compile(r"\d\.\d{1,3}\.\d")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)


def _public_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


class SecretScanner:
    """detect-secrets, configured once, scanning single lines."""

    def __init__(self) -> None:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import get_settings

        get_settings().configure_plugins(PLUGINS)
        self._scan_line = scan_line

    def find(self, line: str) -> list[tuple[str, str]]:
        """(secret text, kind) pairs in one line; kind is "PASSWORD" for keyword matches."""
        found = []
        for secret in self._scan_line(line):
            value = secret.secret_value
            if value and len(value) >= 6:
                found.append((value, "PASSWORD" if secret.type == "Secret Keyword" else "KEY"))
        return found


def redact(text: str, scanner: SecretScanner | None) -> tuple[str, Counter[str]]:
    """The text with PII replaced, and how many of each kind were replaced."""
    counts: Counter[str] = Counter()

    def sub(pattern: re.Pattern[str], tag: str, text: str, check: Any = None) -> str:
        def repl(match: re.Match[str]) -> str:
            if check is not None and not check(match.group(0)):
                return match.group(0)
            counts[tag] += 1
            return f"<{tag}>"

        return pattern.sub(repl, text)

    # Cheap substring checks first: most files have no "@", no dotted quad, no key block.
    if "PRIVATE KEY" in text:
        text = sub(_PRIVATE_KEY, "KEY", text)
    if "@" in text:
        text = sub(EMAIL, "EMAIL", text)
    if _DOTTED.search(text):
        text = sub(IPV4, "IP_ADDRESS", text, _public_ip)
    if scanner is not None:
        suspects, line_no, previous = [], 0, 0
        for match in SUSPECT_LINE.finditer(text):
            line_no += text.count("\n", previous, match.start())
            previous = match.start()
            if not suspects or suspects[-1] != line_no:
                suspects.append(line_no)
        lines = text.split("\n") if suspects else []
        for i in suspects:
            line = lines[i]
            if len(line) > 4000:
                continue
            for value, kind in scanner.find(line):
                if value in line and value not in ("<KEY>", "<EMAIL>"):
                    counts[kind] += line.count(value)
                    line = line.replace(value, f"<{kind}>")
            lines[i] = line
        if suspects:
            text = "\n".join(lines)
    return text, counts


class PiiStep(PipelineStep):
    """Replaces PII in every file's content and counts each kind."""

    name = "pii"

    def __init__(self) -> None:
        super().__init__()
        self.scanner = SecretScanner()

    def process(self, record: SourceFile) -> SourceFile:
        record.content, counts = redact(record.content, self.scanner)
        record.pii = dict(counts)
        self.stats.counters.update(counts)
        return record
