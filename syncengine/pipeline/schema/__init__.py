"""What the source table looks like, which of its columns are loaded under which names and types, and how
that compares with the target table (drift)."""
