"""Backups of synced tables: archives of the rows as they are stored, and their restore (plain Python, no Django).

`files` writes and reads one archive file (zstd, optionally sealed with the keyring) while hashing it;
`tables` streams a table through binary COPY into such files, with a manifest, and restores and verifies it.
"""
