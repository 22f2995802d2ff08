"""The operator command line, `python -m shared imports ...` and `python -m shared validate ...`.

May import: every package of `shared`. `validate` imports only `shared.fec`, so it starts fast.
"""
