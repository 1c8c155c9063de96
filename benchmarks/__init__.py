"""The benchmark behind ``make bench``: the product measured against the machine.

It builds a practice of N fictional patients on SQLite and on PostgreSQL and
times the onboarding list, the bulk actions, invitation delivery and the
importer. Each is set beside a floor measured on the same machine in the
same run: the list's own SQL run on a bare cursor, plain smtplib, plain json
parsing.
The results go to docs/benchmarks.md. Run it with ``python -m benchmarks``.
"""
