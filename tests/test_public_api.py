"""The public API (issue item 12): exactly DESIGN §2's names, the Stage enum's string
behaviour, the error tree, and an import that stays light (no click, no rich)."""

from __future__ import annotations

import importlib.metadata
import json
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
    VerifyReport,
)

DESIGN_NAMES = sorted([
    "JobStore", "Stage", "VerifyReport",
    "JobStoreError", "EncodeError", "DecodeError", "StoreUnavailableError", "StageError",
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
    assert Stage.SHADOW == "shadow"
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


@pytest.mark.parametrize("error", [EncodeError, DecodeError, StoreUnavailableError, StageError])
def test_every_error_is_a_jobstore_error(error: type[Exception]) -> None:
    assert issubclass(error, JobStoreError)
    assert issubclass(JobStoreError, Exception)


def test_encode_error_is_also_a_type_error() -> None:
    """Code that catches TypeError around ``jobs[k] = v`` (as for a dict) still catches it."""
    assert issubclass(EncodeError, TypeError)


def test_decode_error_names_the_key() -> None:
    error = DecodeError("job-1", "not JSON")
    assert error.key == "job-1"
    assert "'job-1'" in str(error)
    assert issubclass(DecodeError, ValueError)


def test_stage_error_is_also_a_value_error() -> None:
    assert issubclass(StageError, ValueError)


def test_a_missing_key_is_not_a_jobstore_error() -> None:
    """A missing job stays the plain KeyError a dict raises."""
    assert not issubclass(KeyError, JobStoreError)
    assert not issubclass(JobStoreError, KeyError)


def test_a_job_store_is_a_mutable_mapping() -> None:
    assert issubclass(JobStore, MutableMapping)


def test_verify_report_is_the_type_verify_returns(tmp_path: Path) -> None:
    with JobStore(f"sqlite:///{tmp_path}/jobs.db") as store:
        assert isinstance(store.verify(), VerifyReport)
