"""Transforms run on Arrow batches, column-wise: never a Python loop per row on the hot path.

A batch travels: casts to PostgreSQL's types (`casts`) -> key checks (`validate`) -> protection (`protect`,
which applies the run's plan from `syncengine.pipeline.protection`) -> load.
A transform that cannot honour the configuration raises a terminal error before anything is extracted, so a
column configured as sensitive is never written as plaintext.
"""
