"""The memory dump format and the private all-or-nothing write (jobstore.snapshot): a file
written 0600 and complete, or not at all, with no temporary file left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from jobstore.exceptions import JobStoreError
from jobstore.snapshot import FORMAT, MemoryDump, atomic_0600, read_dump, write_json_atomic


def test_a_written_file_is_private_and_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_failed_write_leaves_no_temporary_file_and_no_partial_target(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(TypeError):
        write_json_atomic(target, {"fine": 1, "not json": object()})
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json_atomic(target, {"version": 1})

    def fail_half_way() -> None:
        with atomic_0600(target) as out:
            out.write('{"version": 2, "trunc')
            raise RuntimeError("the writer failed half way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert json.loads(target.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_directory_that_does_not_exist_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_json_atomic(tmp_path / "missing" / "out.json", {})


def test_a_dump_reads_back_as_written(tmp_path: Path) -> None:
    dump = MemoryDump({"a": {"status": "done"}}, table="jobs", instance_id="i1",
                      stage="shadow", dumped_at="2024-05-01T10:00:00+00:00",
                      unencodable=("b",))
    dump.write(tmp_path / "mem.json")
    assert json.loads((tmp_path / "mem.json").read_text())["format"] == FORMAT
    again = read_dump(tmp_path / "mem.json")
    assert again == dump
    assert again.dumped_time is not None
    assert again.dumped_time.utcoffset() is not None


@pytest.mark.parametrize(("content", "message"), [
    ("{", "is not JSON"),
    ('{"format": "other"}', "is not a jobstore memory dump"),
    (json.dumps({"format": FORMAT}), "has no 'jobs' object"),
])
def test_a_file_that_is_not_a_dump_is_refused_by_name(tmp_path: Path, content: str,
                                                      message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(JobStoreError, match=message) as caught:
        read_dump(path)
    assert str(path) in str(caught.value)


def test_a_missing_dump_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(JobStoreError, match="cannot read the snapshot"):
        read_dump(tmp_path / "absent.json")
