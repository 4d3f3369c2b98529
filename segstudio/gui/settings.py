"""Window settings kept between runs (QSettings): layout, last folder, opacity, tool sizes."""

from __future__ import annotations

from PySide6.QtCore import QSettings


def app_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "segstudio", "segstudio")


def get_float(s: QSettings, key: str, default: float) -> float:
    try:
        return float(s.value(key, default))  # type: ignore[arg-type]  # a str or a number; others fail below
    except (TypeError, ValueError):
        return default


def get_bool(s: QSettings, key: str, default: bool) -> bool:
    v = s.value(key, default)
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes")
    return bool(v)
