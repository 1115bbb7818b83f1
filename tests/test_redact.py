"""What a person is shown of a database (jobstore.db.redact): no password, no SQL, one line."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from jobstore.db.redact import REASON_MAX, password, reason, safe_url, scrub


def test_a_url_is_shown_without_its_password() -> None:
    url = "postgresql://app:s3cr%2Ft@db.example/jobs"
    assert "s3cr" not in safe_url(url)
    assert password(url) == "s3cr/t"
    assert password("sqlite:///jobs.db") is None
    assert safe_url("not a url") == "<unparseable URL>"


def test_every_spelling_of_the_password_is_scrubbed() -> None:
    text = "failed for s3cr/t at postgresql://app:s3cr%2Ft@db"
    assert "s3cr" not in scrub(text, "s3cr/t")
    assert scrub(text, None) == text


def test_a_reason_is_the_drivers_first_line_without_sql_or_parameters() -> None:
    error = OperationalError("SELECT secret FROM jobs WHERE key = ?", ("k",),
                             Exception("\n  database is locked  \nmore detail"))
    assert reason(error) == "database is locked"
    assert len(reason(Exception("x" * 1000))) == REASON_MAX
    assert reason(Exception()) == "Exception"
