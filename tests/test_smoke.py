from jobstore import JobStore, Stage


def test_a_job_written_in_dual_write_is_read_back_after_reopening(make_store):
    jobs = make_store(stage=Stage.DUAL_WRITE)
    jobs["abc123"] = {"status": "queued"}
    jobs.close()
    again: JobStore[dict[str, str]] = make_store()
    assert again["abc123"] == {"status": "queued"}
