"""Protection of sensitive and large columns at rest, beside the sync stages rather than one of them.

- `keyring`: the master keys (`FDM_ENCRYPTION_KEYS`), the first one primary.
- `crypto`: the AEAD envelope of an encrypted value and its padding; `blind_index`: the keyed digests that
  let an encrypted column be searched; `rowkeys`: the row key each ciphertext is bound to.
- `compress`: one zstd frame per value; `dictionaries`: trained dictionaries stored in the target.
- `plan`: which columns a table encrypts, indexes and compresses; `codec`: values as bytes and back.
- `policy`: the per-source protection policy a run checks its plan against (no column another table of the
  source encrypts goes out in clear).
- `protector`: the plan applied to an Arrow batch (a sync's transform step calls it).
- `catalog`: `_fdm.protected_columns`, how each table's stored columns are protected, and their indexes.
- `reader`: reading a synced table back, decrypted or masked; `rotation`: re-encryption under a new key.
"""
