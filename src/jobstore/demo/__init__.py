"""``jobstore demo`` as a product of its own: the whole migration, end to end, narrated.

On an SQLite file in a fresh temporary folder it runs the seed's presentation service as real
processes, shows the legacy dict losing a job, then walks the stages with the real ``jobstore``
commands (with their real output and exit codes): two servers in ``dual_write``, a SIGKILL
mid-render that loses nothing, an in-place change reaching the database, verify clean, a drift
caught and repaired, ``shadow``, ``db_primary``, cutover, a rollback and forward again, ending in
``db_only`` with every job in the database.

The CLI hands `jobstore.demo.run.run_demo` a way to run those commands, so nothing here imports
`jobstore.cli`. The modules: ``run`` (the entry), ``acts`` (the eleven acts), ``narrator`` (what
is printed and the commands run), ``servers`` (the service processes), ``service`` (the service
they run, ``python -m jobstore.demo.service``), ``reader`` (the sqlite3 reads that check each
claim), ``stopping`` (failures and signals). This file imports none of them, so that a service
process starts without loading rich.
"""
