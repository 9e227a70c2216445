import rung


def test_all_lists_every_public_name_sorted() -> None:
    """The façade's __all__ is sorted and names exactly the public attributes."""
    public = sorted(
        name for name in vars(rung) if not name.startswith("_") and not _is_module(name)
    )
    assert sorted(rung.__all__) == rung.__all__
    assert public == rung.__all__


def test_every_error_derives_from_rung_error() -> None:
    """Each exception rung exports is a RungError."""
    errors = [getattr(rung, n) for n in rung.__all__ if isinstance(getattr(rung, n), type)]
    errors = [e for e in errors if issubclass(e, BaseException)]
    assert errors
    assert all(issubclass(e, rung.RungError) for e in errors)


def _is_module(name: str) -> bool:
    return type(getattr(rung, name)).__name__ == "module"
