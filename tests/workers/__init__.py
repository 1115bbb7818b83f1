"""Small programs the tests run as real subprocesses (``sys.executable path/to/worker.py``)."""
