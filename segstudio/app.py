"""Composition root of the window: resolve the folder, open the project, show the window."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The bundled resources: `segstudio/resources` where segstudio is installed (wheel, `pip install .`;
    setup.py maps the top-level `resources/` there), else `resources/` beside the package (a source
    checkout, an editable install, the PyInstaller bundle)."""
    here = Path(__file__).resolve().parent
    for d in (here / "resources", here.parent / "resources"):
        if (d / "samples").is_dir():
            return d
    return here / "resources"


RESOURCES = resources_dir()
SAMPLES = RESOURCES / "samples"


def sample_images() -> list[Path]:
    """The bundled sample images, sorted by name (empty when the install has none)."""
    from segstudio.core.imageio import IMAGE_EXTENSIONS
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def run_gui(args) -> int:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from segstudio.cli.common import CliError, check_store_spec
    from segstudio.core.errors import UserError
    from segstudio.core.project import Project, ProjectError
    from segstudio.core.store import StoreError
    from segstudio.gui.main_window import MainWindow
    from segstudio.gui.settings import app_settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("segstudio")
    app.setOrganizationName("segstudio")
    folder = Path(args.folder) if args.folder else SAMPLES
    shown = None
    if args.folder and folder.is_file():  # an image, stack or video ("Open with", the .desktop file's %f)
        folder, shown = folder.parent, folder.name
        args.folder = str(folder)
    try:
        store = check_store_spec(getattr(args, "store", None))
        if store and not args.folder:
            raise CliError("--store opens a team's project on its image folder: give the FOLDER too")
        project = open_samples(args.project) if not args.folder else \
            Project.open(folder, args.project, store=store)
    except (ProjectError, StoreError, UserError, OSError) as e:
        if args.screenshot:
            print(f"segstudio: error: {e}", file=sys.stderr)
            return 2
        QMessageBox.critical(None, "segstudio", f"Cannot open {folder}:\n{e}")
        return 2
    if args.allow_large:
        project.allow_large = True
    win = MainWindow(project, app_settings())
    win.show()
    record = next((r for r in project.store.images() if r.path == shown), None) if shown else None
    if record is None and shown:  # a stack or video file: its first frame
        frames = project.sequence_frames(shown)
        record = frames[0] if frames else None
    if args.screenshot:
        from segstudio.gui.screenshot import take
        return take(app, win, args.screenshot, args.image or (record.path if record is not None else shown))
    if record is not None:
        win.open_image(record.id)
    else:
        win.open_first()
    code = app.exec()
    project.close()
    return code


def open_samples(project_path=None, folder: Path | None = None):
    """The bundled samples, with their store in the user's data folder (the package stays
    read-only); the sample annotations are imported the first time. `folder`: a copy of the
    samples to open instead (the self-test's)."""
    from PySide6.QtCore import QStandardPaths

    from segstudio.core.project import Project
    from segstudio.core.records import DONE
    from segstudio.io.coco import import_coco
    if project_path is None:
        base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
        project_path = base / "samples" / "project.db"
    project = Project.open(SAMPLES if folder is None else folder, project_path)
    if not project.store.get_setting("samples_imported", False):
        ann = RESOURCES / "sample_annotations" / "nuclei.coco.json"
        if ann.exists():
            import_coco(project, ann, status=DONE)
        project.store.set_setting("samples_imported", True)
    if project.store.get_setting("last_image") is None:
        first_sample_shown(project)
    return project


def first_sample_shown(project) -> None:
    """The first start shows the sample the README's screenshot shows: the one with the bundled
    annotations (the most regions), not whichever sorts first by name."""
    store = project.store
    counts = [(store.region_count(i), i) for i in store.image_ids()]
    if counts and max(counts)[0] > 0:
        store.set_setting("last_image", max(counts)[1])
