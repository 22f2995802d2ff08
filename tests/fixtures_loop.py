"""Fixtures that start the Cegid Loop emulator as a real process (filled in by the emulator work)."""
