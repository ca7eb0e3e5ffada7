"""Each pipeline step on crafted inputs: drop reasons, path safety, licence rules, PII, dedup."""

from __future__ import annotations

import io
import random
import tarfile
import textwrap
import zipfile
from collections import Counter

import numpy as np
import pytest

from runstack.datasets_hub.config import MinHashConfig, QualityConfig
from runstack.datasets_hub.dedup import NearDeduplicator
from runstack.datasets_hub.ingest import Ingest, git_blob_id
from runstack.datasets_hub.language import LanguageStep, detect
from runstack.datasets_hub.licenses import LicenseStep, normalise
from runstack.datasets_hub.minhash import MinHash, MinHashLSH, shingle_hashes
from runstack.datasets_hub.quality import QualityFilter
from runstack.datasets_hub.record import SourceFile
from runstack.errors import InvalidArgumentError

from .conftest import GPL, MIT


def _record(path: str, content: str, repo: str = "o/r", **kw) -> SourceFile:
    return SourceFile(content=content, path=path, repo_name=repo, blob_id=git_blob_id(content.encode()), **kw)


def test_tar_and_zip_entries_that_escape_or_link_are_refused_and_counted(tmp_path):
    tar_path = tmp_path / "code.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        for name, data in (("ok/a.py", b"print(1)\n"), ("../evil.py", b"x=1\n"), ("/abs.py", b"x=2\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("ok/link.py")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    zip_path = tmp_path / "code.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("src/b.py", "print(2)\n")
        zf.writestr("../../c.py", "print(3)\n")
    ingest = Ingest()
    assert [r.path for r in ingest.read(tar_path)] == ["ok/a.py"]
    assert [r.path for r in ingest.read(zip_path)] == ["src/b.py"]
    assert ingest.stats.dropped["archive entry escapes or links"] == 4
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "c.py").exists()


def test_size_nul_and_encodings(tmp_path):
    folder = tmp_path / "o" / "r"
    folder.mkdir(parents=True)
    (folder / "big.py").write_bytes(b"x = 1\n" * 100)
    (folder / "nul.py").write_bytes(b"x = 1\x00\n")
    (folder / "latin.py").write_bytes("# café olé, ça marche très bien — naïve façade\nx = 'é'\n".encode("cp1252"))
    (folder / "ok.py").write_bytes(b"y = 2\n")
    ingest = Ingest(max_file_bytes=300)
    records = {r.path: r for r in ingest.read(folder)}
    assert set(records) == {"latin.py", "ok.py"} and records["ok.py"].repo_name == "o/r"
    assert records["latin.py"].src_encoding != "utf-8" and "café" in records["latin.py"].content
    assert dict(ingest.stats.dropped) == {"over 300 bytes": 1, "binary (NUL bytes)": 1}
    assert records["ok.py"].blob_id == git_blob_id(b"y = 2\n")
    with pytest.raises(InvalidArgumentError, match="source="):
        list(ingest.read(folder / "ok.py"))


def test_git_blob_id_matches_git(repos):
    import subprocess

    out = subprocess.run(["git", "-C", str(repos[0]), "rev-parse", "HEAD:pkg/core.py"], capture_output=True, text=True)
    records = {r.path: r for r in Ingest().read(repos[0])}
    assert records["pkg/core.py"].blob_id == out.stdout.strip() == git_blob_id(records["pkg/core.py"].content.encode())
    assert records["pkg/core.py"].repo_name == "alice/alpha"


@pytest.mark.parametrize(
    ("path", "content", "language", "strategy"),
    [
        ("a.py", b"import os\n", "Python", "extension"),
        ("run", b"#!/usr/bin/env python3\nprint(1)\n", "Python", "shebang"),
        ("Makefile", b"all:\n\techo hi\n", "Makefile", "filename"),
        ("x.rs", b'fn main() { println!("hi"); }\n', "Rust", "content"),
    ],
)
def test_language_strategies(path, content, language, strategy):
    assert detect(path, content) == (language, strategy)


def test_language_step_drops_unknown_and_flags_vendor():
    step = LanguageStep()
    out = list(step.run([_record("vendor/jquery/jquery.js", "var a = 1;\n"), _record("notes.zzz9", "qq\n")]))
    assert [r.path for r in out] == ["vendor/jquery/jquery.js"] and out[0].is_vendor
    assert dict(step.stats.dropped) == {"language not detected": 1}


def _licences(files: dict[str, str]) -> dict[str, tuple[list[str], str]]:
    step = LicenseStep(
        permissive=("MIT", "Apache-2.0", "BSD-3-Clause"), keep_types=("permissive", "non_permissive", "no_license")
    )
    return {r.path: (r.detected_licenses, r.license_type) for r in step.run([_record(p, c) for p, c in files.items()])}


def test_licence_rules_per_branch():
    found = _licences({
        "LICENSE": MIT, "a.py": "x = 1\n", "sub/b.py": "y = 2\n",
        "gpl/COPYING": GPL, "gpl/c.py": "z = 3\n",
        "mixed/d.py": "# SPDX-License-Identifier: GPL-3.0-only\nw = 4\n",
        "npm/package.json": '{"license": "Apache-2.0"}', "npm/e.js": "var e;\n",
    })  # fmt: skip
    assert found["a.py"] == (["MIT"], "permissive") and found["sub/b.py"] == (["MIT"], "permissive")
    assert found["gpl/c.py"] == (["GPL-3.0-only"], "non_permissive")  # nearest licence file wins
    assert found["mixed/d.py"] == (["GPL-3.0-only"], "non_permissive")  # its own header overrides the folder
    assert found["npm/e.js"] == (["Apache-2.0"], "permissive")
    assert _licences({"x.py": "x = 1\n"})["x.py"] == ([], "no_license")


def test_a_repository_beyond_the_held_bytes_waits_on_disk_with_the_same_licences(monkeypatch):
    from runstack.datasets_hub import licenses, pipeline

    files = {"LICENSE": MIT, "a.py": "x = 1\n", "sub/b.py": "y = 2\n", "gpl/COPYING": GPL, "gpl/c.py": "z = 3\n",
             "mixed/d.py": "# SPDX-License-Identifier: GPL-3.0-only\nw = 4\n"}  # fmt: skip
    records = [_record(p, c, repo="one/repo") for p, c in files.items()] + [_record("x.py", "x\n", repo="two/repo")]
    step = licenses.LicenseStep(permissive=("MIT",), keep_types=("permissive", "non_permissive", "no_license"))
    expected = [(r.repo_name, r.path, r.detected_licenses, r.license_type) for r in step.run(records)]
    spilled: list[int] = []
    temporary = pipeline.tempfile.TemporaryFile
    monkeypatch.setattr(pipeline.tempfile, "TemporaryFile", lambda **kw: spilled.append(1) or temporary(**kw))
    monkeypatch.setattr(licenses, "HELD_BYTES", 20)  # the first few bytes in memory, the rest on disk
    records = [_record(p, c, repo="one/repo") for p, c in files.items()] + [_record("x.py", "x\n", repo="two/repo")]
    found = [(r.repo_name, r.path, r.detected_licenses, r.license_type) for r in step.run(records)]
    assert found == expected and len(found) == 7 and spilled  # the same, in the same order
    assert dict((path, (ids, kind)) for _, path, ids, kind in found)["gpl/c.py"] == (["GPL-3.0-only"], "non_permissive")


APACHE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\nTERMS AND CONDITIONS"
BSD3 = ("Redistribution and use in source and binary forms, with or without modification, are permitted "
        "provided that ... Neither the name of the copyright holder nor the names of its contributors ...")  # fmt: skip


def test_licence_hierarchy_dual_licences_and_expressions():
    found = _licences({
        # packaging's layout: a LICENSE that points at two alternatives
        "pkg/LICENSE": "This software is made available under the terms of *either* of the licenses found in "
                       "LICENSE.APACHE or LICENSE.BSD. Contributions are made under the terms of *both* these licenses.",
        "pkg/LICENSE.APACHE": APACHE, "pkg/LICENSE.BSD": BSD3, "pkg/a.py": "a = 1\n",
        # dateutil's layout: one file holding both texts, dual licensed
        "du/LICENSE": "dateutil is dual licensed.\n" + APACHE + "\n\n" + BSD3, "du/b.py": "b = 1\n",
        # bundled third-party notices after the project's own licence do not change it
        "np/LICENSE.txt": MIT + "\n\nThis distribution bundles several third-party libraries:\n" + GPL, "np/c.py": "c=1\n",
        "expr/or.py": "# SPDX-License-Identifier: MIT OR GPL-3.0-only\n", "expr/and.py": "# SPDX-License-Identifier: MIT AND GPL-3.0-only\n",
        "expr/with.py": "// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception\n",
        "expr/gplwith.py": "// SPDX-License-Identifier: GPL-2.0-only WITH Classpath-exception-2.0\n",
        "MIT_LICENSE.txt": MIT, "root.py": "r = 1\n", "deep/er/vendored/LICENSE-GPL": GPL, "deep/er/vendored/v.py": "v=1\n",
        "site/x-1.0.dist-info/METADATA": "Metadata-Version: 2.4\nName: x\nLicense-Expression: BSD-3-Clause OR MIT\n\nbody",
        "site/x/mod.py": "m = 1\n",
    })  # fmt: skip
    assert found["pkg/a.py"] == (["Apache-2.0", "BSD-3-Clause"], "permissive")
    assert found["du/b.py"] == (["Apache-2.0", "BSD-3-Clause"], "permissive")
    assert found["np/c.py"] == (["MIT"], "permissive")
    assert found["expr/or.py"] == (["GPL-3.0-only", "MIT"], "permissive")  # one permissive alternative is enough
    assert found["expr/and.py"] == (["GPL-3.0-only", "MIT"], "non_permissive")
    assert found["expr/with.py"][1] == "permissive" and found["expr/gplwith.py"][1] == "non_permissive"
    assert found["root.py"] == (["MIT"], "permissive") and found["deep/er/vendored/v.py"][1] == "non_permissive"
    assert found["site/x/mod.py"] == (["MIT"], "permissive")  # the root's: METADATA sits in its own folder


def test_licence_files_are_read_before_the_language_step_can_drop_them(tmp_path):
    from runstack.datasets_hub.build import build
    from runstack.datasets_hub.publish import read_column

    from .conftest import git_repo

    repo = git_repo(tmp_path / "src", "o", "r", {"LICENSE": MIT, "main.py": "x = 1\n",
                                                 "third_party/lib/COPYING": GPL, "third_party/lib/lib.py": "y = 2\n"})  # fmt: skip
    build([str(repo)], tmp_path / "out", "v1", progress=False)
    rows = {r["path"]: r for r in read_column(tmp_path / "out", ["path", "license_type"])}
    assert rows["main.py"]["license_type"] == "permissive" and "third_party/lib/lib.py" not in rows  # GPL vendored code


def test_licence_evidence_and_normalisation():
    step = LicenseStep(permissive=("MIT",), keep_types=("permissive",))
    (record,) = [r for r in step.run([_record("LICENSE", MIT), _record("m.py", "x=1\n")]) if r.path == "m.py"]
    assert record.license_evidence == [
        {"license": ["MIT"], "expression": "MIT", "file": "LICENSE", "source": "license-file", "score": 1.0,
         "match": "licence text"}
    ]  # fmt: skip
    assert normalise("MIT OR Apache-2.0") == ["Apache-2.0", "MIT"] and normalise("no idea") == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("x = '" + "a" * 1200 + "'\n", "line longer than 1000"),
        (("y = '" + "b" * 150 + "'\n") * 5, "mean line length over 100"),
        ("{}[]();;;,,,..  \n" * 20, "alphanumeric fraction under 0.25"),
        ("# This file is auto-generated. Do not edit.\nx = 1\n", "auto-generated"),
        (
            "DATA = (\n"
            + "    'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0'\n" * 20
            + ")\n",
            "encoded data",
        ),
    ],
)
def test_quality_filters_each_have_a_reason(content, reason):
    step = QualityFilter(QualityConfig())
    assert list(step.run([_record("f.py", content)])) == []
    assert dict(step.stats.dropped) == {reason: 1}
    assert list(step.run([_record("ok.py", "def f(x):\n    return x + 1\n")]))


def test_minhash_estimates_jaccard_and_lsh_finds_near_copies():
    rng = random.Random(0)
    words = [f"w{rng.randrange(5000)}" for _ in range(3000)]
    a = " ".join(words)
    b = " ".join(words[:2850] + [f"x{i}" for i in range(150)])
    grams = lambda t: {tuple(t.split()[i : i + 5]) for i in range(len(t.split()) - 4)}  # noqa: E731
    truth = len(grams(a) & grams(b)) / len(grams(a) | grams(b))
    ma, mb = MinHash.from_text(a), MinHash.from_text(b)
    assert abs(ma.jaccard(mb) - truth) < 0.08
    lsh = MinHashLSH(threshold=0.7, num_perm=256)
    lsh.insert("a", ma)
    assert lsh.query(mb) == ["a"] and lsh.query(MinHash.from_text(" ".join(reversed(words)))) == []
    manual = MinHash()
    manual.update_batch(w.encode() for w in ["a", "b", "c"])
    assert manual.jaccard(manual) == 1.0 and len(manual.digest()) == 256


def test_shingles_do_not_cross_documents():
    hashes, docs = shingle_hashes(["a b c d e", "f g h i j", "tiny"], ngram=5)
    assert docs.tolist() == [0, 1, 2] and len(set(hashes.tolist())) == 3


def test_minhash_config_is_checked():
    with pytest.raises(InvalidArgumentError, match="bands x rows='32 x 4'"):
        MinHashConfig(bands=32, rows=4)
    with pytest.raises(InvalidArgumentError, match="threshold=1.5"):
        MinHashConfig(threshold=1.5)


@pytest.mark.parametrize("buckets", [1, 3])
def test_exact_dedup_ranking(tmp_path, buckets):
    from runstack.datasets_hub.cache import write_spill
    from runstack.datasets_hub.stages import exact_map, exact_reduce, index_spills

    a = _record("z.py", "same\n", repo="big/repo", priority=10, license_type="no_license")
    b = _record("a.py", "same\n", repo="small/repo", priority=1, license_type="permissive")
    c = _record("b.py", "same\n", repo="small/repo", priority=1, license_type="permissive")
    d = _record("d.py", "other\n", repo="big/repo")
    spills = [tmp_path / "0.pkl", tmp_path / "1.pkl"]
    write_spill(spills[0], iter([a, b, []]), MinHashConfig())
    write_spill(spills[1], iter([c, d, []]), MinHashConfig())
    first = index_spills(0, [str(spills[0])], [], str(tmp_path))  # two tasks, as the engine runs them
    second = index_spills(1, [str(spills[1])], [], str(tmp_path))
    assert [first[0][0].tolist(), second[0][0].tolist()] == [[0, 1], [0, 1]]
    assert first[2] + second[2] == {"big/repo": 2, "small/repo": 2}
    exact_map(0, [0], [(0, first[1][0])], str(tmp_path), buckets)
    exact_map(1, [1], [(1, second[1][0])], str(tmp_path), buckets)
    found = [exact_reduce(bucket, 2, str(tmp_path)) for bucket in range(buckets)]
    dropped = sorted(tuple(pair) for part, _ in found for pair in part.tolist())
    # permissive first, then the higher priority, then repository and path: b survives a and c
    assert dropped == [(0, 0), (1, 0)]
    assert sum((shared for _, shared in found), Counter()) == {("big/repo", "small/repo"): 1}


def test_near_dedup_clusters_crafted_copies():
    rng = np.random.default_rng(0)
    base = [" ".join(f"t{v}" for v in rng.integers(0, 10_000, 400)) for _ in range(5)]
    docs = []
    for i, text in enumerate(base):
        words = text.split()
        docs.append(text)
        docs.append(" ".join(words[:390] + ["edit"] * 10))  # ~0.93 Jaccard with its base
        if i == 0:
            docs.append(" ".join(words[:200] + [f"n{k}" for k in range(200)]))  # ~0.33: not a duplicate
    near = NearDeduplicator(MinHashConfig())
    for i, text in enumerate(docs):
        near.add(text, (False, 0, "r", f"{i:03d}"))
    result = near.result()
    assert result.survivors == [True, False, True] + [True, False] * 4
    assert result.cluster_of[:3] == [0, 0, None] and result.verified_pairs == 5


def test_minhash_update_and_from_text_agree_and_lsh_derives_its_bands_like_datasketch():
    from datasketch.lsh import _optimal_param

    from runstack.datasets_hub.minhash import MinHash, MinHashLSH

    text = "def area(radius):\n    return 3.14159 * radius * radius  # the area of a circle of that radius\n"
    by_text, by_update = MinHash.from_text(text), MinHash()
    for shingle in MinHash.shingles(text):
        by_update.update(shingle)
    assert (by_text.hashvalues == by_update.hashvalues).all() and by_text.jaccard(by_update) == 1.0
    for threshold, num_perm in ((0.7, 256), (0.5, 128), (0.9, 64)):
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert (lsh.bands, lsh.rows) == _optimal_param(threshold, num_perm, 0.5, 0.5)


@pytest.mark.parametrize("backend", ["phrases", "scancode"])
def test_both_licence_backends_read_real_licence_files(backend):
    if backend == "scancode":
        pytest.importorskip("licensedcode")
    from importlib import metadata

    dist = metadata.distribution("packaging")  # dual: LICENSE points at LICENSE.APACHE and LICENSE.BSD
    texts = {f.name: f.read_text() for f in dist.files or [] if f.name.startswith("LICENSE")}
    assert {"LICENSE", "LICENSE.APACHE", "LICENSE.BSD"} <= set(texts)
    step = LicenseStep(permissive=("Apache-2.0", "BSD-2-Clause"), keep_types=("permissive",), backend=backend)
    records = [_record(f"p/{name}", text) for name, text in texts.items()] + [_record("p/mod.py", "x = 1\n")]
    (mod,) = [r for r in step.run(records) if r.path == "p/mod.py"]
    assert mod.detected_licenses == ["Apache-2.0", "BSD-2-Clause"] and mod.license_type == "permissive"
    assert mod.license_evidence[0]["expression"] == "Apache-2.0 OR BSD-2-Clause"


def test_licence_texts_in_the_forms_real_packages_ship():
    from runstack.datasets_hub.licenses import read_license_file

    mit_body = ("Permission is hereby granted, free of charge, to any person obtaining a copy of this software, "
                "subject to the following conditions: The above copyright notice shall be included.")  # fmt: skip
    commented = "\n".join("# " + line for line in ["Copyright (c) nexB", *textwrap.wrap(mit_body, 30)])
    assert read_license_file(commented)[0] == ["MIT"]  # pasted as comment lines
    isc = ("Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is "
           "hereby granted, provided that the above copyright notice and this permission notice appear in all copies.")  # fmt: skip
    zero_bsd = "Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted."
    assert read_license_file(isc)[0] == ["ISC"] and read_license_file(zero_bsd)[0] == ["0BSD"]
    variant = ("Redistribution and use in source and binary forms, with or without modification, are permitted ... "
               "The name of the author may not be used to endorse or promote products derived from this software.")  # fmt: skip
    assert read_license_file(variant)[0] == ["BSD-3-Clause"]
    preamble = ("NOTE: Portions of this project's code are copyrighted by several parties.\nAll parties provide their "
                "portions of the code under the 3-clause BSD license, found below.\n---\n" + variant)  # fmt: skip
    assert read_license_file(preamble)[0] == ["BSD-3-Clause"]
    gpl_mentioning_lgpl = (GPL + "\n" + "x " * 400 + "\nIf this is what you want to do, use the GNU Lesser General "
                           "Public License instead of this License. Version 3, 29 June 2007")  # fmt: skip
    assert read_license_file(gpl_mentioning_lgpl)[0] == ["GPL-3.0-only"]
    notice = "# Copyright (c) nexB Inc.\n# SPDX-License-Identifier: Apache-2.0\n# See the LICENSE file.\n"
    assert read_license_file(notice)[0] == ["Apache-2.0"]


def test_a_licence_file_named_after_bundled_code_does_not_decide_the_folder():
    found = _licences({"LICENCE.rst": MIT, "LICENCE.python": "This module includes code from the Python standard "
                       "library; either of the licenses below applies at your option.\n" + GPL, "a.py": "a = 1\n"})  # fmt: skip
    assert found["a.py"] == (["MIT"], "permissive")


def test_mit_wording_is_not_a_bundling_heading_and_a_rule_ends_the_project_licence():
    from runstack.datasets_hub.licenses import read_license_file

    bsd3 = ("Redistribution and use in source and binary forms, with or without modification, are permitted. Neither "
            "the name of the copyright holder may be used to endorse or promote products derived from this software.")  # fmt: skip
    # debian_inspector's NOTICE: MIT then BSD-3, both the project's; "substantial portions" is MIT's own wording
    both = MIT + "\nincluded in all copies or substantial portions of the Software.\n\n" + bsd3
    assert read_license_file(both)[0] == ["MIT", "BSD-3-Clause"]
    # pillow's LICENSE: the project's licence, a rule, then the licences of libraries its wheels bundle
    bundled = MIT + "\n\n----\n\nAOM\n\n" + bsd3 + "\n\n----\n\nFreeType\n\n" + GPL
    assert read_license_file(bundled)[0] == ["MIT"]
    titled = "MIT License\n-----------\n\n" + MIT  # a title's underline is not a rule
    assert read_license_file(titled)[0] == ["MIT"]


def test_a_wheels_licence_folder_and_an_or_later_notice():
    # intbitset's wheel: the LGPL text in LICENSE, and README.rst (a PEP 639 licence file) saying "or later"
    lgpl = "GNU LESSER GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\n"
    readme = "intbitset\n=========\n\nLicense\n-------\n\nSPDX-License-Identifier: LGPL-3.0-or-later\n"
    wheel = "site/intbitset-4.1.2.dist-info/licenses"
    found = _licences({f"{wheel}/LICENSE": lgpl, f"{wheel}/README.rst": readme, f"{wheel}/AUTHORS.rst": "Alice\n",
                       f"{wheel}/x.py": "x = 1\n"})  # fmt: skip
    assert found[f"{wheel}/x.py"] == (["LGPL-3.0-or-later"], "non_permissive")
    # the same README outside a wheel's licence folder is not a licence file: the text alone is "-only"
    found = _licences({"r/LICENSE": lgpl, "r/README.rst": readme, "r/x.py": "x = 1\n"})
    assert found["r/x.py"] == (["LGPL-3.0-only"], "non_permissive")
    # a notice for another licence family does not change the text's version
    other = "SPDX-License-Identifier: LGPL-2.1-or-later\n"
    found = _licences({f"{wheel}/COPYING": GPL, f"{wheel}/README.rst": other, f"{wheel}/y.py": "y = 1\n"})
    assert found[f"{wheel}/y.py"][0] == ["GPL-3.0-only", "LGPL-2.1-or-later"]


def test_quality_measures_lines_and_words_as_splitlines_and_split_do():
    import re

    from runstack.datasets_hub.quality import _profile

    def expected(text: str, word: int) -> tuple[int, int, int, list[str]]:
        lines = text.splitlines() or [""]
        alnum = sum(map(len, re.findall(r"[^\W_]+", text)))
        return len(lines), max(map(len, lines)), alnum, [w for w in text.split() if len(w) >= word]

    rng = random.Random(5)
    pieces = ["a", "Z9", " ", "\n", "\r", "\r\n", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "é", "\x85", "\u2028",
              "\xa0", "\u3000", "_", "٣", "😀", "abcdefgh" * 3, "\n\n"]  # fmt: skip
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        for word in (1, 3, 8, 16):
            assert _profile(text, word) == expected(text, word), (text, word)
    for text in ("", "\n", "x\n", "a\n\nb", "a" * 200 + " " + "b" * 63):  # the ASCII fast path's edges
        assert _profile(text, 64) == expected(text, 64)
