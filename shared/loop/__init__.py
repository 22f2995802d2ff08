"""The Cegid Loop public API client: importFEC, the import status, the deposit URL; one error
taxonomy (`shared.loop.errors`) that every caller branches on, and the reading of Loop's answers.

May import: `shared.platform`.
"""
