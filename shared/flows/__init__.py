"""The import flows: the per-process `Pipeline` (clients built from the settings), the dossier of a
file, the validation of a snapshot, submit and deposit, the status poll, the operator actions and
the outcome written back on the blob. Triggers call these and nothing below them.

May import: `shared.platform`, `shared.fec`, `shared.loop`, `shared.ledger`.
"""
