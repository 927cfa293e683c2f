"""The sync pipeline: plain Python, no Django. `runner.run_sync` is the entry point.

A row travels: `source` (connection) -> `extract` (Arrow batches) -> `transform/` (column transforms, casts,
key checks) -> `load` (COPY into staging) -> `publish` (one transaction, with `watermark`). `schema/` plans the
columns and handles drift, `typemap` holds the type rules, `locks` keeps one run per table, `errors` and
`result` are what callers get back. See docs/pipeline.md.
"""
