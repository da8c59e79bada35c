"""Assertions several test modules share."""

from __future__ import annotations


def one_error_line(capsys, *fragments: str) -> str:
    """The captured stderr is exactly one `error: …` line containing every fragment."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err
