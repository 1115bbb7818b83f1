# ruff: noqa: E501  (a markdown table: its rows are as long as their cells)
"""The figures `python -m bench.fleet` gave, as docs/benchmarks.md shows them (a fleet run
takes minutes per size, so `make bench` reprints them rather than running it)."""
RECORDED = """\
`python -m bench.fleet` (not in `make bench`: a few minutes per size): N service processes, each
one store in `dual_write` writing its own jobs five times a second from one thread
(`sync_interval` 1 s), on a private PostgreSQL 15 with `max_connections = 100`, or through a
private PgBouncer 1.18 (transaction mode, `default_pool_size = 20`) in front of it; then
`jobstore cutover` while they write, and every acknowledged write looked up afterwards. One run
each on the 2-core machine above, shared with other work, 2026-12-02:

| command | processes seen live | cutover | slowest to follow | server connections writing / during cutover | writes acknowledged | lost |
|---|---|---|---|---|---|---|
| `python -m bench.fleet --processes 40` (stage changes polled) | 40 of 40 | 2.2 s | 2.3 s | 42 / 48 | 3,989 | 0 |
| `python -m bench.fleet --processes 40` (pushed: `NOTIFY`/`LISTEN`) | 40 of 40 | 1.57 s | 1.5 s | 42 / 60 | 4,176 | 0 |
| `python -m bench.fleet --processes 90 --max-overflow 0` (polled, the gate of the time) | 84 of 90 | 6.8 s | 9.8 s | 90 / 91 | 12,601 | 0 |
| `python -m bench.fleet --processes 90 --max-overflow 0` (pushed, the gate as released) | 90 of 90 | 6.9 s: **refused** | - (stage unchanged) | 90 / 91 | 11,968 | 0 |
| `python -m bench.fleet --processes 200 --pgbouncer` (polled: no `LISTEN` through PgBouncer) | 200 of 200 | 21.2 s | 21.2 s | 20 / 20 | 43,325 | 0 |

Before this release every idle store held two connections, so 90 processes did not fit at
all ("too many clients"). Now a process holds one; the 40-process figures include the few
that held a second while a verify or a starved CPU kept their loop on the first longer than
the pool's patience (50 ms); with the push, every process runs its round at the same moment, so
more of them do. With the default overflow (7), 90 processes on two cores did not
fit: while 90 interpreters start, the CPU is so short that many processes outwait the patience
and open a second connection for the linger (2 s), and some store failed to open with "too
many clients". Near the limit, set `JOBSTORE_POOL_MAX_OVERFLOW=0` (as above: exactly 90) or go
through PgBouncer, which held the server at its pool of 20 for 200 processes.

At 90 processes on two cores the cutover does not complete, and it should not. In the first
run, six processes were not live at the cutover's start (their heartbeats were late on the
starved CPU) and the gate of the time did not wait for them; the released gate waits for an
instance until it has missed 10 of its intervals. In the last run every process was seen, and
verify found 41 writes of one process still queued (its database calls had outwaited their
1 s quick attempt on the starved CPU), so the cutover refused, as it must while a dict holds a
write the database does not. The issue's targets of 3 s for the cutover and 0.5 s to follow
are met at 40 processes directly (1.57 s and 1.5 s, the follow measured from the call's start,
verify included), not at 90 or 200 on this machine: 200 interpreters share two cores, and
through PgBouncer a stage change travels by polling, one `sync_interval`.

How soon a stage change reaches processes connected directly, apart from verify: `python -m
bench.stage_follow --url postgresql+psycopg://postgres@127.0.0.1:5432/test --processes 10` (ten
processes whose rounds are 30 s apart, so only the pushed change can reach them; six changes
with no wait, each timed until every heartbeat shows it, the status reads included): 0.12 to
0.22 s, slowest 0.22 s, against the 0.5 s target, with a CI run beside it.
"""
