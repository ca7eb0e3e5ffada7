"""Licence detection checked against the licences installed distributions declare.

For every distribution in this environment with both a declared licence (License-Expression,
License, or an OSI classifier) and a licence file in its metadata folder, runstack's
detector reads only the licence file; the declared licence, normalised to SPDX, is the
baseline it is compared with in the same run. A declaration of only "BSD" does not say which
BSD licence: there, reading one BSD-n-Clause licence counts as agreeing (and is counted).

    python bench/license_agreement.py

Prints one summary line:
    license_agreement: ... of ... distributions agree (...%) | ...
"""

from __future__ import annotations

import re
from importlib import metadata

from runstack.datasets_hub.licenses import LicenseIndex, is_license_file, normalise
from runstack.datasets_hub.record import SourceFile

CLASSIFIER = re.compile(r"License :: OSI Approved :: (.+)")
CLASSIFIER_IDS = {"MIT License": "MIT", "Apache Software License": "Apache-2.0", "BSD License": "BSD-3-Clause",
                  "ISC License (ISCL)": "ISC", "Python Software Foundation License": "PSF-2.0",
                  "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "The Unlicense (Unlicense)": "Unlicense",
                  "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
                  "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only"}  # fmt: skip


BARE_BSD = re.compile(r"(?i)^\s*(?:new |simplified |modified )?bsd(?: license)?\s*$")
BSD_FAMILY = {"BSD-2-Clause", "BSD-3-Clause"}


def bare_bsd(dist: metadata.Distribution) -> bool:
    """A declaration that says only "BSD": it does not say which BSD licence the file holds."""
    meta = dist.metadata
    value = meta.get("License-Expression") or meta.get("License") or ""
    classifiers = [m.group(1) for c in meta.get_all("Classifier") or [] if (m := CLASSIFIER.match(c))]
    return bool(BARE_BSD.match(value)) or (not value and classifiers == ["BSD License"])


def declared(dist: metadata.Distribution) -> set[str]:
    meta = dist.metadata
    for field in ("License-Expression", "License"):
        value = meta.get(field)
        if value and len(value) < 100:
            found = set(normalise(value))
            if found:
                return found
    return {
        CLASSIFIER_IDS[m.group(1)]
        for c in meta.get_all("Classifier") or []
        if (m := CLASSIFIER.match(c)) and m.group(1) in CLASSIFIER_IDS
    }


def detected(dist: metadata.Distribution, backend: str = "phrases") -> set[str] | None:
    """The licences runstack's licence step finds from the licence files alone (all of them,
    read as one folder: dual licences, several files, bundled notices)."""
    own = f"{dist.metadata['Name']}".lower().replace("-", "_")
    files = [
        f
        for f in dist.files or []
        if is_license_file(str(f))
        and f.parts[0].endswith(".dist-info")
        and f.parts[0].lower().replace("-", "_").startswith(own)
    ]  # this distribution's, not vendored ones
    if not files:
        return None
    index = LicenseIndex(backend)
    for file in files:
        try:
            text = file.read_text() or ""
        except (OSError, UnicodeDecodeError):
            continue
        # Kept where it lies (licenses/LICENSE, licenses/mypy/typeshed/LICENSE): as in a repository, the
        # top folder's licence is the project's; deeper ones belong to the code under them.
        index.add(SourceFile(content=text, path=str(file), repo_name="d/d", blob_id=""))
    top = files[0].parts[0]
    evidence = index.for_path(f"{top}/licenses/x") or index.for_path(f"{top}/x")
    return {spdx for item in evidence for spdx in item["license"]}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["phrases", "scancode", "both"], default="both")
    args = parser.parse_args()
    backends = ["phrases", "scancode"] if args.backend == "both" else [args.backend]
    if "scancode" in backends:
        try:
            import licensedcode  # noqa: F401
        except ImportError:
            backends.remove("scancode")
            print("license_agreement: scancode backend skipped (pip install '.[scancode]')")
    parts = []
    for backend in backends:
        compared = agree = overlap = undetected = bare = 0
        seen: set[str] = set()
        for dist in metadata.distributions():
            if dist.metadata["Name"] in seen:  # a distribution found on two search paths counts once
                continue
            seen.add(dist.metadata["Name"])
            truth, ours = declared(dist), detected(dist, backend)
            if not truth or ours is None:
                continue
            compared += 1
            undetected += not ours
            family = bare_bsd(dist) and len(ours) == 1 and ours <= BSD_FAMILY
            bare += family and ours != truth
            agree += ours == truth or family
            overlap += bool(ours & truth)
        parts.append(f"{backend}: {agree} of {compared} agree exactly ({100 * agree / compared:.1f}%; {bare} declared "
                     f"only 'BSD' and read as one BSD licence), {overlap} share a licence "
                     f"({100 * overlap / compared:.1f}%), {undetected} unrecognised")  # fmt: skip
    print("license_agreement: " + " | ".join(parts) + " | declared metadata as the baseline")


if __name__ == "__main__":
    main()
