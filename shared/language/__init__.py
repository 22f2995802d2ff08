"""What a dropper reads, in their language: the gettext catalogues (French; English is the source),
Babel's dates, amounts and plurals in the firm's time zone, and the rule messages of the FEC
registry rendered in that language (`wording`). Logs and events stay English and never come here.

May import: `shared.fec` (the rule registry, for its messages), `shared.platform` (the languages and
the default time zone, with the settings), the standard library and Babel.
"""
