"""Frames in the window: which sequence the open image belongs to, the frame bar under it, the
previous / next frame keys, and decoding ahead in the direction of travel.

A sequence is what core/sequences names: a stack or video file's frames, or a folder's numbered
files in numeric order (Project.sequence_frames). Stepping opens the frame through the window as
any image opens (its edits saved first, its claim taken); the next frames are decoded on the
session's workers while the person looks at this one, so a step finds its frame decoded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QObject, Signal

from segstudio.core import sequences
from segstudio.gui import status_times
from segstudio.gui.frame_bar import FrameBar

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenu

    from segstudio.core.records import ImageRecord
    from segstudio.gui.frames_window import FramesWindow

AHEAD = 3  # frames decoded ahead in the direction of travel (one behind as well)
KEPT_SEQUENCES = 4  # sequences whose frame lists are kept (switching between them costs no query)
PREV_KEYS = (",", "Alt+Left")
NEXT_KEYS = (".", "Alt+Right")


class SequenceView(QObject):
    sequence_changed = Signal(object)  # the open image's sequence key (None: in none)

    def __init__(self, win: FramesWindow) -> None:
        super().__init__(win.window())
        self.win = win
        self.key: str | None = None  # the open image's sequence (None: it is in none)
        self.frames: list[ImageRecord] = []
        self.index_of: dict[int, int] = {}  # image id -> position in frames
        self.direction = 1
        self._lists: OrderedDict[str, list[ImageRecord]] = OrderedDict()
        self.bar = FrameBar(win.window())
        self.bar.hide()
        central = win.centralWidget()
        layout = central.layout() if central is not None else None
        assert layout is not None  # the window lays out notices and canvas in a column
        layout.addWidget(self.bar)
        self.bar.frame_requested.connect(self.open_frame)
        self.bar.step_requested.connect(self.step)
        win.files.model.modelReset.connect(self._lists.clear)  # a scan or an import: lists read again

    def add_actions(self, menu: QMenu) -> None:
        from segstudio.gui.window_menus import MenuWindow, add_action
        add_action(cast(MenuWindow, self.win), menu, "&Next frame", lambda: self.step(1), NEXT_KEYS,
                   "The next frame of the sequence the open image belongs to", icon_name="chevron-right")
        add_action(cast(MenuWindow, self.win), menu, "&Previous frame", lambda: self.step(-1), PREV_KEYS,
                   "The previous frame of the sequence the open image belongs to", icon_name="chevron-left")

    # ---------------------------------------------------------------- which sequence
    def locate(self, rec: ImageRecord) -> int | None:
        """The record's position in its sequence (loaded and kept as the current one); None when
        it is in none (the bar hides)."""
        key = sequences.sequence_key(rec.path)
        if key is None:
            return None
        if key != self.key or rec.id not in self.index_of:
            frames = self._frames(key)
            container = sequences.split_frame_path(rec.path) is not None
            if not frames or (len(frames) < 2 and not container):
                return None
            self.key, self.frames = key, frames
            self.index_of = {r.id: k for k, r in enumerate(frames)}
        return self.index_of.get(rec.id)

    def _frames(self, key: str) -> list[ImageRecord]:
        frames = self._lists.get(key)
        if frames is None:
            frames = self.win.project.sequence_frames(key)
            self._lists[key] = frames
            while len(self._lists) > KEPT_SEQUENCES:
                self._lists.popitem(last=False)
        self._lists.move_to_end(key)
        return frames

    def forget(self) -> None:
        """Frames were added or removed (a scan): the lists are read again when next needed."""
        self._lists.clear()
        self.key, self.frames, self.index_of = None, [], {}

    @property
    def current(self) -> int | None:
        """The open frame's position (the frame asked for last, while it decodes)."""
        s = self.win.session
        for image_id in (s.requested, s.current.record.id if s.current is not None else None):
            if image_id is not None and image_id in self.index_of:
                return self.index_of[image_id]
        return None

    def neighbours(self, image_id: int) -> tuple[int | None, int | None] | None:
        """(previous, next) frame ids around an open frame; None when it is not a frame."""
        k = self.index_of.get(image_id)
        if k is None:
            return None
        return (self.frames[k - 1].id if k > 0 else None,
                self.frames[k + 1].id if k + 1 < len(self.frames) else None)

    # ---------------------------------------------------------------- the window shows an image
    def image_shown(self, rec: ImageRecord) -> None:
        before = self.key
        k = self.locate(rec)
        if k is None:
            self.key, self.frames, self.index_of = None, [], {}
            self.bar.hide()
        if self.key != before:
            self.sequence_changed.emit(self.key)
        if k is None:
            return
        name = _shown_name(rec.path)
        self.bar.show_frame(k, len(self.frames), name)
        self.bar.show()
        self.decode_ahead(k)

    def image_failed(self, rec: ImageRecord) -> None:
        """A frame that could not be shown: the bar says which it is, so the keys step on from it."""
        k = self.locate(rec)
        if k is None:
            return
        name = _shown_name(rec.path)
        self.bar.show_frame(k, len(self.frames), name)
        self.bar.show()

    def decode_ahead(self, k: int) -> None:
        """The next frames in the direction of travel, and one behind, on the session's decoders
        (the frames' own cache keeps what they read from a video or stack)."""
        d = self.direction
        ahead = [k + d * n for n in range(1, AHEAD + 1)] + [k - d]
        self.win.session.prefetch(self.frames[i].id for i in ahead if 0 <= i < len(self.frames))

    # ---------------------------------------------------------------- moving
    def step(self, n: int) -> None:
        k = self.current
        if k is None:
            self.win.statusBar().showMessage("The open image is not a frame of a sequence (a stack, a video or "
                                             "a folder of numbered frames)", status_times.NOTE_MS)
            return
        target = min(max(k + n, 0), len(self.frames) - 1)
        if target == k:
            self.win.statusBar().showMessage("This is the last frame" if n > 0 else "This is the first frame",
                                             status_times.BRIEF_MS)
            return
        self.open_frame(target)

    def open_frame(self, index: int) -> None:
        if not 0 <= index < len(self.frames):
            return
        k = self.current
        if k is not None and index != k:
            self.direction = 1 if index > k else -1
        self.win.open_image(self.frames[index].id)


def _shown_name(path: str) -> str:
    """What the bar names beside the frame number: a stack's or video's file (the number is the
    frame's), a numbered file's own name."""
    split = sequences.split_frame_path(path)
    return split[0].rpartition("/")[2] if split is not None else path.rpartition("/")[2]
