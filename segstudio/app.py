"""Composition root of the window (filled in by the GUI issue)."""


def run_gui(args) -> int:
    from segstudio.gui.main_window import run
    return run(args)
