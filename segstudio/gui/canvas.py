"""The canvas: image, region overlay, selection outline and tool previews in a QGraphicsView.

Mouse events become `Pointer`s in image coordinates for the current tool. The wheel and a
trackpad pinch zoom about the cursor (the image pixel under it stays under it), `+`/`-` about
the view centre; middle-drag or Space+drag pans; pixels stay sharp when zoomed in. Zoomed out, the image
is drawn from a smaller pyramid level so a frame never touches every pixel of a big image.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (QBrush, QColor, QImage, QKeyEvent, QMouseEvent, QNativeGestureEvent, QPainter,
                           QPainterPath, QPen, QWheelEvent)
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsView, QStyleOptionGraphicsItem, QWidget

from segstudio.core import maskops
from segstudio.gui.overlay import OverlayItem
from segstudio.gui.qimage import wrap
from segstudio.editing.tools import Pointer, Tool

if TYPE_CHECKING:
    from segstudio.core.region import Region


ZOOM_STEP = 1.25  # one + or - key press
WHEEL_ZOOM_BASE = 1.0015  # zoom factor per 1/8 degree of wheel turn: a 15-degree notch is about x1.2


class ImageItem(QGraphicsItem):
    """Draws the display pixels (and their pyramid) for the exposed rectangle only."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.levels: list[tuple[int, np.ndarray, QImage]] = []  # (factor, array, QImage)
        self.size = (1, 1)

    def set_levels(self, levels: list[tuple[int, np.ndarray]]) -> None:
        self.prepareGeometryChange()
        self.levels = [(f, a, wrap(a)) for f, a in levels]
        h, w = levels[0][1].shape[:2]
        self.size = (w, h)
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, *self.size)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self.levels:
            return
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        scale = painter.worldTransform().m11()
        f, _, q = self.levels[0]
        for lf, _la, lq in self.levels:
            if lf <= 1.0 / max(scale, 1e-6):
                f, q = lf, lq
        if scale < 1.0:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        src = QRectF(exposed.x() / f, exposed.y() / f, exposed.width() / f, exposed.height() / f)
        painter.drawImage(exposed, q, src)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)


def pyramid(display: np.ndarray, min_side: int = 512) -> list[tuple[int, np.ndarray]]:
    """The display image and smaller copies (area-averaged) down to `min_side`.

    Levels halve; above 64 Mpx they quarter instead, so the pyramid of a 16k x 16k image costs
    1/15 of it rather than 1/3 (zoomed between 1/4 and 1, the full image is drawn smoothed).
    """
    levels = [(1, display)]
    a, f = display, 1
    step = 4 if display.shape[0] * display.shape[1] > 64_000_000 else 2
    while min(a.shape[:2]) // step >= min_side:
        a = np.ascontiguousarray(cv2.resize(a, (a.shape[1] // step, a.shape[0] // step),
                                            interpolation=cv2.INTER_AREA))
        f *= step
        levels.append((f, a))
    return levels


class SelectionItem(QGraphicsItem):
    """Outlines of the selected regions (contours as a path, cosmetic pen)."""

    def __init__(self) -> None:
        super().__init__()
        self.path = QPainterPath()
        self.setZValue(5)

    def set_regions(self, regions: Iterable[Region]) -> None:
        self.prepareGeometryChange()
        path = QPainterPath()
        for r in regions:
            if not r.mask.size:
                continue
            for c in maskops.edge_polygons(r.mask, r.x, r.y):
                pts = [QPointF(float(x), float(y)) for x, y in c]
                if len(pts) >= 2:
                    path.moveTo(pts[0])
                    for p in pts[1:]:
                        path.lineTo(p)
                    path.closeSubpath()
        self.path = path
        self.update()

    def boundingRect(self) -> QRectF:
        return self.path.boundingRect().adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.path.isEmpty():
            return
        pen = QPen(QColor(255, 255, 255), 2.5)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.drawPath(self.path)
        pen = QPen(QColor(20, 20, 20), 1.2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.drawPath(self.path)


PREVIEW_TINT = (0, 200, 255, 110)  # RGBA of a proposed mask: cyan, see-through


def mask_image(mask: np.ndarray) -> QImage:
    """A bool mask as a tinted, transparent QImage (the copy owns its pixels)."""
    h, w = mask.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[mask] = PREVIEW_TINT
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class PreviewItem(QGraphicsItem):
    """What the current tool is drawing: brush circle, polygon in progress, box, seed points."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: dict[str, Any] = {}
        self.setZValue(10)
        self._rect = QRectF()

    def set_shapes(self, shapes: dict[str, Any]) -> None:
        old = self._rect
        self.prepareGeometryChange()
        self.shapes = shapes
        self._rect = self._bounds()
        self.update(old.united(self._rect))

    def _bounds(self) -> QRectF:
        xs, ys = [], []
        s = self.shapes
        if "circle" in s:
            x, y, r = s["circle"]
            xs += [x - r, x + r]
            ys += [y - r, y + r]
        for x, y in s.get("poly", []):
            xs.append(x)
            ys.append(y)
        if "rect" in s:
            x0, y0, x1, y1 = s["rect"]
            xs += [x0, x1]
            ys += [y0, y1]
        for x, y, _ in s.get("points", []):
            xs.append(x)
            ys.append(y)
        if "mask" in s:
            m, mx, my = s["mask"]
            xs += [mx, mx + m.shape[1]]
            ys += [my, my + m.shape[0]]
        if not xs:
            return QRectF()
        pad = 40.0  # room for cosmetic pens and markers at any zoom out to 1/8
        return QRectF(min(xs) - pad, min(ys) - pad, max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad)

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        s = self.shapes
        if "mask" in s:  # a proposed mask (Segment Anything's candidate), tinted, under the markers
            m, mx, my = s["mask"]
            painter.drawImage(QPointF(mx, my), mask_image(m))
        pen = QPen(QColor(255, 255, 0), 1.5)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if "circle" in s:
            x, y, r = s["circle"]
            painter.drawEllipse(QPointF(x, y), r, r)
        if s.get("poly"):
            pts = [QPointF(x, y) for x, y in s["poly"]]
            for a, b in zip(pts, pts[1:], strict=False):  # consecutive pairs
                painter.drawLine(a, b)
            if s.get("closed") and len(pts) > 2:
                painter.drawLine(pts[-1], pts[0])
            scale = max(painter.worldTransform().m11(), 1e-6)
            for p in pts:
                painter.drawRect(QRectF(p.x() - 2.5 / scale, p.y() - 2.5 / scale, 5 / scale, 5 / scale))
        if "rect" in s:
            x0, y0, x1, y1 = s["rect"]
            painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        if s.get("points"):
            scale = max(painter.worldTransform().m11(), 1e-6)
            rad = 4.0 / scale
            for x, y, positive in s["points"]:
                painter.setBrush(QBrush(QColor(40, 220, 40) if positive else QColor(230, 40, 40)))
                painter.drawEllipse(QPointF(x, y), rad, rad)


class Canvas(QGraphicsView):
    hovered = Signal(float, float)  # image coordinates under the cursor
    left = Signal()  # the cursor left the image area (to a panel, a scroll bar, another window)
    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.image_item = ImageItem()
        self.overlay = OverlayItem()
        self.selection = SelectionItem()
        self.preview = PreviewItem()
        for it in (self.image_item, self.overlay, self.selection, self.preview):
            self.scene().addItem(it)
        # Zoom anchors itself (see zoom_by): Qt's AnchorUnderMouse uses the last position the
        # view saw in its own mouseMoveEvent, which this canvas never passes on.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self.setBackgroundBrush(QColor(48, 48, 52))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # no scroll bars: wheel zooms, middle-drag or Space+drag pans, Ctrl+0 fits
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tool: Tool | None = None
        self._pan_from: QPointF | None = None
        self._space = False
        self._dragging = False
        self.has_image = False
        # the one gate for edits by the mouse: True refuses the tool's press (an image someone else
        # edits, shown read-only; the window says why). The select tool only looks, so it passes.
        self.refuse_edit: Callable[[], bool] = lambda: False

    # ---------------------------------------------------------------- content
    def set_image(self, levels: list[tuple[int, np.ndarray]], width: int, height: int, keep_view: bool = False) -> None:
        self.image_item.set_levels(levels)
        self.scene().setSceneRect(QRectF(-0.5 * width, -0.5 * height, 2 * width, 2 * height))
        self.has_image = True
        if not keep_view:
            self.fit()

    def clear_image(self) -> None:
        self.image_item.levels = []
        self.has_image = False
        self.viewport().update()

    def set_tool(self, tool: Tool) -> None:
        if self.tool is not None and self.tool is not tool:
            self.tool.cancel()
        self.tool = tool
        self._dragging = False
        self.preview.set_shapes({})
        self.viewport().setCursor(Qt.CursorShape.ArrowCursor if tool.name == "select"
                                  else Qt.CursorShape.CrossCursor)

    def reset_tool(self) -> None:
        """Forget the gesture in progress and redraw the tool's (now empty) preview: the image
        changed, or undo/redo moved the regions under the tool."""
        self._dragging = False
        self.update_preview()

    # ---------------------------------------------------------------- zoom
    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        w, h = self.image_item.size
        self.fitInView(QRectF(0, 0, w, h), Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom)

    def actual_size(self) -> None:
        self.zoom_by(1.0 / self.zoom)

    MIN_ZOOM, MAX_ZOOM = 0.01, 64.0  # scale: a 100-px image pixel per screen pixel .. 64 screen px each

    def view_center(self) -> QPointF:
        vp = self.viewport()
        return QPointF(vp.width() / 2.0, vp.height() / 2.0)

    def to_scene(self, at: QPointF) -> QPointF:
        """A viewport point (sub-pixel) in scene = image coordinates."""
        return self.viewportTransform().inverted()[0].map(QPointF(at))

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        """Scale by `factor` about the viewport point `at` (default: the view centre): the scene
        point under `at` stays under it, as far as the scene rectangle lets the view scroll."""
        z = self.zoom
        factor = min(max(z * factor, self.MIN_ZOOM), self.MAX_ZOOM) / z
        if abs(factor - 1.0) < 1e-9:
            return
        at = self.view_center() if at is None else QPointF(at)
        anchor = self.to_scene(at)
        self.scale(factor, factor)
        self.show_at(anchor, at)
        self.zoom_changed.emit(self.zoom)

    def show_at(self, scene_pt: QPointF, at: QPointF) -> None:
        """Scroll so that `scene_pt` lands on the viewport point `at`."""
        d = self.viewportTransform().map(scene_pt) - at
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(d.x()))
        v.setValue(v.value() + round(d.y()))

    def wheelEvent(self, event: QWheelEvent) -> None:
        dy = event.angleDelta().y()
        if dy:
            self.zoom_by(math.pow(WHEEL_ZOOM_BASE, dy), event.position())
        event.accept()

    def _gesture(self, event: QNativeGestureEvent, at: QPointF) -> bool:
        """Trackpad gestures: pinch zooms about the fingers; a smart-zoom double tap fits."""
        kind = event.gestureType()
        if kind == Qt.NativeGestureType.ZoomNativeGesture:
            self.zoom_by(1.0 + event.value(), at)
        elif kind == Qt.NativeGestureType.SmartZoomNativeGesture:
            self.fit()
        event.accept()
        return True

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.NativeGesture:
            gesture = cast(QNativeGestureEvent, event)  # PySide hands this type over for NativeGesture
            return self._gesture(gesture, gesture.position())
        if event.type() == QEvent.Type.Leave:  # the viewport left: for a scroll bar too, off the image all the same
            self.left.emit()
        return super().viewportEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.NativeGesture:  # sent to the view itself, not its viewport
            gesture = cast(QNativeGestureEvent, event)
            at = self.viewport().mapFrom(self, gesture.position())
            return self._gesture(gesture, QPointF(at))
        return super().event(event)

    # ---------------------------------------------------------------- mouse to tools
    def _pointer(self, event: QMouseEvent, button: Qt.MouseButton | None = None) -> Pointer:
        p = self.to_scene(event.position())
        mods = event.modifiers()
        b = button or event.button()
        name = {Qt.MouseButton.LeftButton: "left", Qt.MouseButton.RightButton: "right",
                Qt.MouseButton.MiddleButton: "middle"}.get(b, "left")
        return Pointer(p.x(), p.y(), name, bool(mods & Qt.KeyboardModifier.ShiftModifier),
                       bool(mods & Qt.KeyboardModifier.ControlModifier),
                       bool(mods & Qt.KeyboardModifier.AltModifier))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (self._space and button == Qt.MouseButton.LeftButton):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if self.tool is not None and self.has_image:
            if self.tool.name != "select" and self.refuse_edit():
                return
            self._dragging = True
            self.tool.press(self._pointer(event))
            self.update_preview()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None and self.has_image and event.button() == Qt.MouseButton.LeftButton:
            if self.tool.name != "select" and self.refuse_edit():
                return
            p = self._pointer(event)
            p.double = True
            self.tool.press(p)
            self.update_preview()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            d = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(d.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(d.y()))
            return
        p = self._pointer(event, Qt.MouseButton.LeftButton)
        self.hovered.emit(p.x, p.y)
        if self.tool is not None and self.has_image:
            self.tool.move(p, bool(event.buttons() & Qt.MouseButton.LeftButton) and self._dragging)
            self.update_preview()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.CrossCursor)
            return
        if self.tool is not None and self.has_image and self._dragging:
            self._dragging = False
            self.tool.release(self._pointer(event))
            self.update_preview()

    def update_preview(self) -> None:
        """Redraw the tool's preview (its state changed outside a mouse event: a key, the brush size)."""
        if self.tool is not None:
            self.preview.set_shapes(self.tool.preview())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if not event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                                    | Qt.KeyboardModifier.MetaModifier):
            if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
                self.zoom_by(ZOOM_STEP)
                return
            if key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
                self.zoom_by(1 / ZOOM_STEP)
                return
        name = {Qt.Key.Key_Return: "Return", Qt.Key.Key_Enter: "Enter", Qt.Key.Key_Escape: "Escape",
                Qt.Key.Key_Backspace: "Backspace"}.get(key)  # type: ignore[call-overload]  # int key() finds IntEnum keys
        if name in ("Return", "Enter") and event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            name = "Shift+" + name
        if name and self.tool is not None and self.tool.key(name):
            self.update_preview()
            return
        super().keyPressEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 (Qt's names)
        """Tab goes to the tool first (Segment Anything cycles its candidates with it); only a
        tool that has no use for it lets Qt move the focus."""
        if self.tool is not None and self.has_image and self.tool.key("Tab"):
            self.update_preview()
            return True
        return super().focusNextPrevChild(next)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            return
        super().keyReleaseEvent(event)
