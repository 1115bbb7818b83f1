"""What a person is shown of a database (jobstore.db.redact): no password, no SQL, one line;
and a URL that cannot be read is one such line too."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from jobstore import JobStore, JobStoreError
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


MALFORMED = {
    "a port that is not a number": "postgresql://app:pw-Zx81q@127.0.0.1:notaport/jobs",
    "no host, the password read as a port": "postgresql://app:pw-Zx81q/jobs",
    "an unclosed IPv6 host": "postgresql://app:pw-Zx81q@[::1/jobs",
    "not a URL": "pw-Zx81q",
    "postgres:// for postgresql://": "postgres://app:pw-Zx81q@127.0.0.1/jobs",
}


@pytest.mark.parametrize("url", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_url_is_one_jobstore_error_without_the_password(url: str) -> None:
    assert "pw-Zx81q" not in safe_url(url)
    with pytest.raises(JobStoreError) as raised:
        JobStore(url)
    message = str(raised.value)
    assert message.startswith(("not a database URL", "unsupported database"))
    assert "pw-Zx81q" not in message
    assert "\n" not in message


def test_postgres_is_told_it_means_postgresql() -> None:
    with pytest.raises(JobStoreError, match=r"did you mean postgresql://\?"):
        JobStore(MALFORMED["postgres:// for postgresql://"])
