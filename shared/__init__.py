"""The FEC to Cegid Loop import pipeline: plain Python, no azure.functions import.

Packages, lowest layer first (a package imports only from the ones below it; the contract is
`[tool.importlinter]` in pyproject.toml, checked by tests/test_architecture.py):
- `shared.platform`: settings, storage clients, SAS signing, clock, backoff, redaction, telemetry.
- `shared.fec`: the FEC validator, a library of its own (no Azure, no Loop, no other package here).
- `shared.loop`: the Cegid Loop API client and its one error taxonomy.
- `shared.ledger`: the import ledger in Table Storage: records, states, transitions, indexes.
- `shared.flows`: the steps that use them: submit, deposit, poll, operator actions, outcome tags.
- `shared.cli`: the operator command line (`python -m shared`).
"""
