"""The detectors behind PII redaction: exact token formats, secrets in context, and personal data.

Each detector names its kind, the tag it is replaced by, a pattern (the secret is the named
group ``s`` when present, else the whole match) and an optional check that rejects look-alikes
(placeholders, example domains, version numbers, private addresses, numbers that fail Luhn).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detector:
    kind: str
    tag: str
    pattern: re.Pattern[str]
    check: Callable[[str, re.Match[str]], bool] | None = None
    strict_only: bool = False
    needs: tuple[str, ...] = ()  # the pattern can only match a text holding one of these (lowercased when ``lower``)
    lower: bool = False
    prefilter: re.Pattern[str] | None = None  # a cheap pattern every match also matches
    # A match never spans lines and holds its (digit) needle or prefilter match: scan only those lines.
    line: bool = False
    lead: int = -1  # every match starts at most this many characters before a needle: try only there
    digit_needs: tuple[str, ...] = ()  # as ``needs``, in a one-byte-per-character copy with every digit written 0
    trigger: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Needles that begin alike: one alternation scans a text once, at C speed, for that first character (else a
        # substring test per needle is quicker than a regex trying each common first letter).
        if len({needle[0] for needle in self.needs}) == 1:
            object.__setattr__(self, "trigger", re.compile("|".join(map(re.escape, self.needs))))


PLACEHOLDERS = re.compile(
    r"(?i)^(?:\*+|x+|\.+|-+|_+|<[^>]*>|\$\{?[\w.:-]+\}?|\{\{.*\}\}|%\(?\w*\)?s|\[.*\]|(?:your|my|the|some|example|dummy|"
    r"test|fake|sample|placeholder|changeme|change_me|redacted|secret|password|passwd|pass|token|apikey|api_key|none|"
    r"null|todo|xxx+)[\w-]*)$"
)  # fmt: skip
EXAMPLE_DOMAINS = re.compile(r"(?i)(?:^|\.)(?:example\.(?:com|org|net)|test|invalid|localhost|local|domain\.com)$")
NON_PERSONAL_USERS = re.compile(r"(?i)^(?:no-?reply|do-?not-?reply|git|noreply\+.*|bounce.*|mailer-daemon|postmaster)$")
# Top-level domains an address in code actually uses: every two-letter country code, and the
# common generic ones. A dotted name ending otherwise (``x@self.weight``) is code, not an email.
_GENERIC_TLDS = ("com org net edu gov mil int info biz name pro io ai dev app co me tv cc xyz tech online site "
                 "cloud email mail page blog shop store ltd inc company global group team network systems")  # fmt: skip
TLDS = frozenset(_GENERIC_TLDS.split())


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _not_placeholder(value: str, _: re.Match[str]) -> bool:
    return not PLACEHOLDERS.match(value) and not value.isdigit() and len(set(value)) > 3


def _secret_value(value: str, match: re.Match[str]) -> bool:
    """An assigned value that looks like a secret: not a placeholder, identifier or path."""
    if not _not_placeholder(value, match):
        return False
    if re.fullmatch(r"[a-z_]+|[A-Z_]+|[a-z]+(?:[A-Z][a-z]+)+|(?:[A-Z][a-z]+)+", value):  # a word or identifier
        return False
    if re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", value) or re.search(r"[%{}]|[<>=]=|,<|^\$", value):
        return False  # a dotted name, a format string, a version specifier, a shell variable
    return not value.startswith(("/", "./", "../", "http://", "https://", "os.", "env", "self."))


_NOT_A_SECRET_NAME = re.compile(
    r"(?i)(?:type|name|id|kind|class|field|prefix|suffix|path|file|url|uri|env|var|len|length|"
    r"count|format|mode|style|pattern|regex|header|param|keyword|label|attr|endpoint|scope)s?$"
)


def _assigned_secret(value: str, match: re.Match[str]) -> bool:
    """A value assigned to a secret's name (not to ``token_type`` or ``key_name``) that looks like one."""
    name = match.string[match.start() : match.start("q")].rstrip(" \t:=>'\"")
    if _NOT_A_SECRET_NAME.search(name) or re.match(r"(?:token|secret|key)[a-z]", name):  # tokenizer, keys
        return False
    if re.fullmatch(r"[A-Za-z][a-z]+(?:[-_ .][A-Za-z][a-z]+)*", value):  # words: 'encoded-word', 'Incorrect'
        return False
    return _secret_value(value, match)


def _email(value: str, match: re.Match[str]) -> bool:
    user, _, domain = value.rpartition("@")
    tld = domain.rsplit(".", 1)[-1].lower()
    if NON_PERSONAL_USERS.match(user) or EXAMPLE_DOMAINS.search(domain):
        return False
    if match.string[match.end() : match.end() + 1] == ":":  # git@github.com:org/repo.git is an SSH address
        return False
    return len(tld) == 2 or tld in TLDS


def _url_password(value: str, match: re.Match[str]) -> bool:
    host = match.group("host").lower()
    if host in ("localhost", "127.0.0.1") or EXAMPLE_DOMAINS.search(host):
        return False
    return _not_placeholder(value, match)


def _public_ipv4(value: str, match: re.Match[str]) -> bool:
    before = match.string[max(0, match.start() - 24) : match.start()].lower()
    after = match.string[match.end() : match.end() + 2]
    if re.search(r"(?:==|>=|<=|~=|!=|\bv|version[\W_]{0,6}|release[\W_]{0,6}|rfc\W*\d*\W*|sections?\W*|§\s*)$", before):
        return False
    if re.match(r"[.\w-]", after):  # 1.2.3.4.5, 1.2.3.4-beta, 1.2.3.4a: not an address
        return False
    if all(int(octet) < 10 for octet in value.split(".")[:3]):  # 3.1.1.6, 8.2.4.45: versions and sections
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def _public_ipv6(value: str, match: re.Match[str]) -> bool:
    if value.count(":") < 2 or not re.search(r"[0-9a-fA-F]{3,4}", value) or value.endswith("::"):
        return False  # a network prefix (2001:db8::), not a host
    if match.string[match.end() : match.end() + 1] in ("/", "%"):
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.version == 6 and address.is_global and not address.is_multicast


def _luhn(value: str, match: re.Match[str]) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    if total % 10:
        return False
    grouped = bool(re.search(r"[ -]", value))
    context = re.search(
        r"(?i)card|credit|visa|master|amex|\bcc(?:_?n|\b)|payment",
        match.string[max(0, match.start() - 60) : match.start()],
    )
    return grouped or context is not None


def _mixed_token(value: str, match: re.Match[str]) -> bool:
    return bool(re.search(r"\d", value) and re.search(r"[A-Z]", value) and re.search(r"[a-z]", value))


def _high_entropy(value: str, match: re.Match[str]) -> bool:
    if re.fullmatch(r"[0-9a-fA-F]+", value):  # hex: commit SHAs and checksums, not secrets
        return False
    if "/" in value and value.count("/") > 2 or value.startswith(("http", "www.")):
        return False
    return _mixed_token(value, match) and entropy(value) >= 4.3


_Q = r"(?P<q>['\"`])"
DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", "KEY", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
                                              r"[\s\S]*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"), needs=('PRIVATE KEY',)),
    Detector("aws_access_key_id", "KEY", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}(?![A-Z0-9])"), needs=('AKIA', 'ASIA', 'ABIA', 'ACCA', 'AGPA', 'AIDA', 'AIPA', 'ANPA', 'ANVA', 'AROA', 'APKA')),
    Detector("aws_secret_access_key", "KEY", re.compile(r"(?i)(?:aws|amazon)?_?(?:secret)_?(?:access)?_?key\w*[\"']?\s*[:=]+\s*[\"']?(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"), needs=('secret',), lower=True),
    Detector("github_token", "KEY", re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})(?![A-Za-z0-9_])"), needs=('ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_')),
    Detector("gitlab_token", "KEY", re.compile(r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}"), needs=('glpat-',)),
    Detector("sendgrid_key", "KEY", re.compile(r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"), needs=('SG.',)),
    Detector("slack_token", "KEY", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), needs=('xox',)),
    Detector("slack_webhook", "KEY", re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}"), needs=('hooks.slack.com',)),
    Detector("stripe_key", "KEY", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), needs=('k_live', 'k_test')),
    Detector("google_api_key", "KEY", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), needs=('AIza',)),
    Detector("openai_key", "KEY", re.compile(r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), _mixed_token, needs=('sk-',)),
    Detector("jwt", "KEY", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), needs=('eyJ',)),
    Detector("url_password", "PASSWORD", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@'\"`]{1,64}:(?P<s>[^\s'\"`]{3,128}?)@(?P<host>[\w.-]*\w)"),
             _url_password, needs=('://',), line=True),
    Detector("password_assignment", "PASSWORD", re.compile(r"(?i)(?:passw(?:or)?d|pwd|passphrase)[\w-]*[\"']?\s*(?::=|=|:|=>)\s*"
                                                           + _Q + r"(?P<s>[^'\"`\s]{4,128})(?P=q)"), _assigned_secret, needs=('passw', 'pwd', 'passphrase'), lower=True),
    Detector("secret_assignment", "KEY", re.compile(r"(?i)(?:secret|token|api_?key|apikey|access_?key|auth_?key|private_?key|credential)[\w-]*[\"']?\s*(?::=|=|:|=>)\s*"
                                                    + _Q + r"(?P<s>[^'\"`\s]{12,256})(?P=q)"), _assigned_secret, needs=('secret', 'token', 'key', 'credential'), lower=True, lead=8),
    Detector("env_secret", "PASSWORD", re.compile(r"(?m)^\s*(?:export\s+)?[A-Z0-9_]*(?:PASS|PASSWORD|PWD|SECRET|TOKEN|API_KEY|APIKEY)[A-Z0-9_]*=(?P<s>[^\s'\"#]{6,128})\s*$"),
             _secret_value, needs=('PASS', 'SECRET', 'TOKEN', 'API_KEY', 'APIKEY', 'PWD')),
    Detector("email", "EMAIL", re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])"), _email, needs=('@',), line=True),
    Detector("ipv4", "IP_ADDRESS", re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d])"), _public_ipv4,
             prefilter=re.compile(r"\.\d{1,3}\.\d{1,3}\."), line=True),
    Detector("ipv6", "IP_ADDRESS", re.compile(r"(?<![\w:.])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|(?::[0-9a-fA-F]{1,4}){1,6}|[0-9a-fA-F]{1,4})(?![\w:])"), _public_ipv6,
             prefilter=re.compile(r":[0-9a-fA-F]{0,4}:"), line=True),
    Detector("credit_card", "CREDIT_CARD", re.compile(r"(?<![\d-])(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|3[47]\d{2}|6(?:011|5\d{2})|35\d{2})(?:[ -]?\d{4}){2}[ -]?\d{1,4}(?:[ -]?\d{3})?(?![\d-])"),
             _luhn, line=True,
             digit_needs=("00000000", "0000 0000", "0000-0000")),
    Detector("phone", "PHONE", re.compile(r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|whatsapp)\b[^\n\d+]{0,12}(?P<s>\+?\d[\d ().-]{7,18}\d)"), needs=('phone', 'tel', 'mobile', 'cell', 'fax', 'whatsapp'), lower=True, line=True),
    Detector("high_entropy_string", "KEY", re.compile(_Q + r"(?P<s>[A-Za-z0-9+/=_-]{24,256})(?P=q)"), _high_entropy, strict_only=True),
)  # fmt: skip
KINDS = tuple(d.kind for d in DETECTORS)
