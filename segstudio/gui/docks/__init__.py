"""The dock panels of the main window."""
