"""An image's pixels in an export: an image file is copied as it is; a stack's or video's frame,
which has no file of its own, is decoded and written as a lossless PNG named by its sequence
and frame (common.image_name: `clips/run.mp4/000012` -> `clips/run.mp4/000012.png`).

A frame that fails to decode is left out of the export with its error stored on it, as an
image file that cannot be read is (common.copy_image)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segstudio.core import imageio
from segstudio.core.project import Project
from segstudio.core.records import ImageRecord
from segstudio.io.common import Report, copy_image, image_name, is_frame


def frame_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of decoded pixels, lossless: (H, W) gray or (H, W, 3|4) colour, uint8 or
    uint16 (16-bit kept: a PNG holds 16-bit gray and colour, which Pillow cannot write for
    colour). ValueError for what a PNG cannot hold without loss (float, other shapes)."""
    a = np.asarray(pixels)
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a frame of {a.dtype} pixels has no lossless PNG form")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[:, :, [2, 1, 0, 3][:a.shape[2]]]  # OpenCV writes BGR(A)
    elif a.ndim != 2:
        raise ValueError(f"a frame of shape {a.shape} is not an image")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"a frame of shape {a.shape} has no pixels")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as PNG")
    return buf.tobytes()


def write_image(project: Project, rec: ImageRecord, root: Path, report: Report) -> str | None:
    """Put the image's pixels under `root` at image_name(rec.path); returns that relative name,
    or None when the image is left out (it cannot be read: its error is stored and reported).
    A write that fails (a full disk) raises OSError naming the file, which stops the export."""
    name = image_name(rec.path)
    dst = root.joinpath(*name.split("/"))
    if not is_frame(rec.path):
        return name if copy_image(project, rec, dst, report) else None
    try:
        data = frame_png(project.load_image(rec))  # a decode error is stored on the frame by load_image
    except imageio.ImageDecodeError as e:
        report.left_out.append((rec.path, str(e)))
        return None
    except ValueError as e:
        project.store.set_error(rec.id, str(e))
        report.left_out.append((rec.path, str(e)))
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        dst.write_bytes(data)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(dst)) from e
    return name
