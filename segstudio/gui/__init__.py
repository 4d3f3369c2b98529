"""The window: PySide6 widgets over the core objects; torch only through workers."""
