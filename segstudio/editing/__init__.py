"""The window's editing logic with no Qt: the editor state, the tools, the prompt tool and the
classical assists (tested without a display)."""
