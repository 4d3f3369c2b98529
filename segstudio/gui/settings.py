"""Window settings kept between runs (QSettings): layout, last folder, opacity, tool sizes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths


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


def open_folder_start(s: QSettings, current: Path | None, install_samples: Path) -> str:
    """Where Open folder starts: the last folder opened, else `current` (the window's folder),
    else the user's Pictures or home folder; never inside the install's bundled samples."""
    last = s.value("last_folder")
    candidates = [Path(str(last))] if last else []
    if current is not None:
        candidates.append(current)
    for loc in (QStandardPaths.StandardLocation.PicturesLocation, QStandardPaths.StandardLocation.HomeLocation):
        candidates += [Path(p) for p in QStandardPaths.standardLocations(loc)]
    try:
        avoid = install_samples.resolve()
    except OSError:
        avoid = install_samples
    for c in candidates:
        try:
            if c.is_dir() and not c.resolve().is_relative_to(avoid):
                return str(c)
        except OSError:
            continue
    return str(Path.home())
