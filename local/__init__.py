"""What runs the app on a machine without Azure: never deployed (see .funcignore)."""
