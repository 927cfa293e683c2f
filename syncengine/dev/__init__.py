"""Development-only code: the demo, the benchmark, sample data and the Snowflake emulator launcher.

Used by `manage.py demo`, `manage.py benchmark` and the tests; runtime code (the pipeline, models, tasks, the
API, the admin) never imports it. Like the pipeline core it is plain Python, except `demo`, which drives the
Django project end to end.
"""
