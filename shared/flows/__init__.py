"""The import flows: the per-process `Pipeline` (clients built from the settings), the dossier of a
file, the validation of a snapshot, submit and deposit, the status poll, the operator actions, the
outcome written back on the blob, the reports next to the files (`verdict_reports`, `report_page`)
and the JSON the CLI, the reports and the read API share (`import_views`, `import_api`). Triggers
call these and nothing below them.

May import: `shared.language`, `shared.platform`, `shared.fec`, `shared.loop`, `shared.ledger`.
"""
