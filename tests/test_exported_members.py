"""``runstack.__all__`` lists exactly the public names, sorted."""

from __future__ import annotations

import types

import runstack


def test_all_is_sorted_and_matches_public_names():
    assert runstack.__all__ == sorted(runstack.__all__)
    public = {
        name
        for name, value in vars(runstack).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
        and name != "Any"
    }
    assert set(runstack.__all__) == public


def test_errors_module_exports_every_error():
    from runstack import errors

    classes = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
               and v.__module__ == errors.__name__}  # fmt: skip
    assert set(errors.__all__) == classes
    assert all(issubclass(getattr(errors, n), errors.RunstackError) for n in classes)
