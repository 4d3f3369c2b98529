"""How long status-bar messages stay, in milliseconds, by how much reading they need.

A message shown without a timeout stays until the next one (tool hints, "working…").
"""

DONE_MS = 2000  # "<job>: done": the result is on screen already
BRIEF_MS = 3000  # undo/redo, split, "All edits saved"
INFO_MS = 4000  # image size and type, a hint about how to use a command, save recovered
NOTE_MS = 5000  # something to read: a tool's or the model's message, "no unfinished images"
FAILED_MS = 6000  # an assist failed; its error text is short
ERROR_MS = 10000  # an image cannot be opened: a path and a reason to read
SAVE_FAILED_MS = 15000  # edits are not being saved; the save label keeps saying so after
