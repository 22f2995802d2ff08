"""The FEC validator (article A47 A-1 of the Livre des procédures fiscales): layout, line rules,
entries, the fast batch path and the report. A library of its own: it runs on a laptop before a
drop (`python -m shared validate`) and needs no Azure and no Loop.

May import: nothing else of `shared`, no Azure SDK, no HTTP client (the standard library only).
"""
