"""Reconciliation: does the PostgreSQL copy hold what Snowflake holds?

`light` compares row counts and exact sums after a run; `deep` compares per-segment hashes of every row's
canonical text and bisects the segments that differ down to the keys and columns (`canonical` spells that text
on both sides; `shape` says which columns are hashed in SQL and which are compared in memory).
"""
