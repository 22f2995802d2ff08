"""The import ledger in Table Storage: one record per blob version, the states and the named
transitions between them (`states`), the conditional writes (`store`), the index partitions for
due checks, request ids and content holds (`indexes`), and the `Ledger` that ties them together.

May import: `shared.platform`.
"""
