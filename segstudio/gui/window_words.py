"""Messages from the model layer, in the window's words.

The inference layer writes one message for everyone, and its remedies name the command line
(`--weights FILE`, `segstudio weights add FILE`, `segstudio train …`). A person in the window
has no command line to pass a flag to: before such a message reaches a panel, each remedy is
replaced by the control that does the same here (the Model panel's … button, Get weights…,
Train). The command line keeps the original text."""

from __future__ import annotations

import re

CHOOSE_FILE = "the Model panel's … button"
GET_WEIGHTS = "Get weights… › Add file… in the Model panel"
ADD_FILE_HERE = "“Add file…” here"  # in the Get weights… dialog itself


def _rules(get_weights: str, catalogue: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """(pattern, window words), the most specific first."""
    return tuple((re.compile(p), w) for p, w in (
        (r"choose it with --weights FILE or the Model panel's …", f"choose it with {CHOOSE_FILE}"),
        (r"choose a weights file \(--weights FILE\)", f"choose a weights file with {CHOOSE_FILE}"),
        (r"segstudio train FOLDER --model \S+ --out FILE, or Train in the Model panel", "Train in the Model panel"),
        (r"\(?segstudio train [^)]*\)?", "Train in the Model panel"),
        (r"give --weights FILE", f"choose a file with {CHOOSE_FILE}"),
        (r"--weights FILE", CHOOSE_FILE),
        (r"offline: `segstudio weights add FILE` with a copy from elsewhere",
         f"offline: add a copy from elsewhere with {get_weights}"),
        (r"run `segstudio weights add FILE`", f"add it with {get_weights}"),
        (r"`segstudio weights add FILE`", get_weights),
        (r"`segstudio weights` lists them", f"{catalogue} lists them"),
    ))


PANEL_RULES = _rules(GET_WEIGHTS, "Get weights…")
DIALOG_RULES = _rules(ADD_FILE_HERE, "the list above")


def window_words(message: str, in_weights_dialog: bool = False) -> str:
    """`message` with every command-line remedy replaced by the window's control for it (in the
    Get weights… dialog, its own Add file… button)."""
    for pattern, words in DIALOG_RULES if in_weights_dialog else PANEL_RULES:
        message = pattern.sub(words, message)
    return message
