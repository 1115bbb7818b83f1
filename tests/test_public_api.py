"""The public API (issue item 12): exactly DESIGN §2's names, the Stage enum's string
behaviour, the error tree, and an import that stays light (no click, no rich)."""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import subprocess
import sys
import types
from collections.abc import MutableMapping
from pathlib import Path

import pytest

import jobstore
from jobstore import (
    DecodeError,
    EncodeError,
    JobStore,
    JobStoreError,
    Stage,
    StageError,
    StoreUnavailableError,
    ValueTooLargeError,
    VerifyReport,
    WriteRefusedError,
)

DESIGN_NAMES = sorted([
    "JobStore", "Stage", "VerifyReport",
    "JobStoreError", "EncodeError", "DecodeError", "StoreUnavailableError", "StageError",
    # Beyond DESIGN's list, under its errors: a value too large for the database (an
    # EncodeError), a write the database refused for its data (issue 11).
    "ValueTooLargeError", "WriteRefusedError",
])


def test_import_jobstore_does_not_import_click_or_rich() -> None:
    """A service that imports the library does not pay for the CLI's dependencies."""
    code = (
        "import json, sys\n"
        "import jobstore\n"
        "from jobstore import JobStore, Stage\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('click', 'rich') or m.startswith('jobstore.cli'))\n"
        "print(json.dumps(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == []


def test_all_is_exactly_designs_names_sorted() -> None:
    """``jobstore.__all__`` lists DESIGN §2's names, sorted, and nothing else."""
    assert jobstore.__all__ == DESIGN_NAMES


def test_every_public_attribute_is_in_all() -> None:
    """Nothing else public hangs off the package (its submodules aside)."""
    public = {name for name, value in vars(jobstore).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(DESIGN_NAMES)


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from jobstore import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == DESIGN_NAMES


def test_the_version_is_the_installed_distributions() -> None:
    assert jobstore.__version__ == importlib.metadata.version("jobstore")


def test_the_package_ships_its_type_information() -> None:
    """``py.typed`` is installed, so users' type checkers read the annotations."""
    assert (Path(jobstore.__file__).parent / "py.typed").is_file()


def test_stage_is_looked_up_by_its_name() -> None:
    assert Stage("db_only") is Stage.DB_ONLY
    assert Stage("memory") is Stage.MEMORY


def test_a_stage_is_its_string() -> None:
    """``str()``, formatting and comparison all give the plain name, as a StrEnum does."""
    assert str(Stage.DB_ONLY) == "db_only"
    assert f"{Stage.DUAL_WRITE}" == "dual_write"
    assert json.loads('"shadow"') == Stage.SHADOW
    assert isinstance(Stage.DB_PRIMARY, str)
    assert json.dumps({"stage": Stage.DB_ONLY}) == '{"stage": "db_only"}'


def test_the_stages_come_in_migration_order() -> None:
    assert [stage.value for stage in Stage] == [
        "memory", "dual_write", "shadow", "db_primary", "db_only"]


def test_an_unknown_stage_raises_value_error() -> None:
    with pytest.raises(ValueError, match="bogus"):
        Stage("bogus")


def test_a_store_refuses_an_unknown_stage_with_stage_error(tmp_path: Path) -> None:
    """``JobStore(stage=...)`` with a name that is no stage raises StageError listing them."""
    with pytest.raises(StageError, match="dual_write"):
        JobStore(f"sqlite:///{tmp_path}/jobs.db", stage="dual-write")


def test_an_unencodable_value_raises_encode_error_a_type_error_and_writes_nothing(
        tmp_path: Path) -> None:
    """Code that catches TypeError around ``jobs[k] = v`` (as for a dict) still catches it."""
    with _store(tmp_path) as store:
        with pytest.raises(TypeError) as raised:
            store["job-1"] = {"status": object()}
        assert isinstance(raised.value, EncodeError)
        assert isinstance(raised.value, JobStoreError)
        assert "job-1" not in store


def test_a_corrupt_row_raises_decode_error_a_value_error_naming_the_key(tmp_path: Path) -> None:
    """A payload changed behind the store's back into text that is no JSON, in a real file."""
    with _store(tmp_path) as store:
        store["job-1"] = {"status": "queued"}
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        conn.execute("UPDATE jobs SET payload = '{not json' WHERE key = 'job-1'")
    conn.close()
    with _store(tmp_path) as store, pytest.raises(ValueError, match="'job-1'") as raised:
        store["job-1"]
    assert isinstance(raised.value, DecodeError)
    assert isinstance(raised.value, JobStoreError)
    assert raised.value.key == "job-1"


def test_a_failing_authoritative_database_raises_store_unavailable_error(tmp_path: Path) -> None:
    """In ``db_only`` a write and a read whose table is gone are the caller's error."""
    with _store(tmp_path) as store:
        store["job-1"] = {"status": "queued"}
        with sqlite3.connect(tmp_path / "jobs.db") as conn:
            conn.execute("ALTER TABLE jobs RENAME TO elsewhere")
        conn.close()
        with pytest.raises(JobStoreError) as raised:
            store["job-2"] = {"status": "queued"}
        assert isinstance(raised.value, StoreUnavailableError)
        with pytest.raises(StoreUnavailableError):
            store["job-1"]


def test_the_two_refusals_sit_in_the_tree_where_their_meaning_is() -> None:
    """Too large is a value that cannot be stored as it is (an EncodeError, so a TypeError);
    refused by the database is a ValueError, and no StoreUnavailableError: waiting for the
    database does not help."""
    assert issubclass(ValueTooLargeError, EncodeError)
    assert issubclass(ValueTooLargeError, TypeError)
    assert issubclass(WriteRefusedError, JobStoreError)
    assert issubclass(WriteRefusedError, ValueError)
    assert not issubclass(WriteRefusedError, StoreUnavailableError)


def test_an_unknown_stage_name_raises_stage_error_a_value_error() -> None:
    with pytest.raises(ValueError, match="bogus") as raised:
        Stage.parse("bogus")
    assert isinstance(raised.value, StageError)
    assert isinstance(raised.value, JobStoreError)


def test_a_missing_key_is_the_plain_key_error_a_dict_raises(tmp_path: Path) -> None:
    with _store(tmp_path) as store, pytest.raises(KeyError) as raised:
        store["missing"]
    assert type(raised.value) is KeyError


def _store(tmp_path: Path) -> JobStore[str, dict[str, object]]:
    """A ``db_only`` store on a file in ``tmp_path``, so every read goes to the database."""
    return JobStore(f"sqlite:///{tmp_path}/jobs.db", stage=Stage.DB_ONLY, sync_interval=60)


def test_a_job_store_is_a_mutable_mapping() -> None:
    assert issubclass(JobStore, MutableMapping)


def test_verify_report_is_the_type_verify_returns(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        assert isinstance(store.verify(), VerifyReport)
