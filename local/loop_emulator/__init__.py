"""An emulator of Cegid Loop's public API, faithful to docs/loop-api.md, for local runs and tests,
with fault injection. Run it with `python -m local.loop_emulator` (or start_emulator_process).

- api.py: the emulated API endpoints (importFEC, getImportStatus/importStatus, getFileUrlDeposit)
- imports.py: an import's life (status 1, 2, then 3 or 4), its file downloaded, hashed, checked as FEC
- deposits.py: Cegid's side of a deposit, in Azurite: write-only SAS URLs, the file read back
- faults.py: the faults accepted (and checked) by POST /_emulator/faults, and how one is answered
- state.py: the emulator's settings and everything it holds between requests
- handler.py: HTTP plumbing shared by the endpoints: answering, key checks, the request log
- server.py: routing, the /_emulator/ control endpoints, the HTTP server
- process.py: the emulator as a subprocess (EmulatorProcess, start_emulator_process)
- __main__.py: the command line
"""
