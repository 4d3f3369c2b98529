"""The click model's thread: a promptable model (inference/promptable.py) loaded beside the
pre-label model, on a thread of its own, so a click is answered while the pre-label model trains,
re-predicts or segments a folder.

The open image's embedding is computed when the window shows it (cached in memory and in the
project's data folder), then the next image's on a second thread, ahead of the user. Each prompt
is marked in the process-wide gate (inference/runtime/priority.py) while it is answered: training
steps, the embedding ahead and re-prediction wait at their next pause point.

Speaks only the protocol: it never asks which model it holds.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import Signal

from segstudio.core.errors import describe
from segstudio.gui.model_thread import ModelThread, model_info

log = logging.getLogger("segstudio")


class ClickWorker(ModelThread):
    loaded = Signal(object)  # model_thread.model_info of the click model
    load_failed = Signal(str)
    unloaded = Signal()
    ready = Signal(int)  # image id whose embedding is computed (or came from the cache)
    candidates = Signal(int, int, object)  # image id, prompt number, inference.promptable.CandidateMasks
    failed = Signal(int, str)  # image id, message

    def __init__(self, project, parent=None):
        super().__init__(project, "segstudio-click", parent)
        self.model = None  # the loaded Promptable (model thread)
        self._cache = None  # its embedding cache in this project (made on the model thread)
        # the image the window shows and the newest prompt on it, written by the GUI thread and
        # read by the model thread, which skips requests nobody waits for any more
        self._image: int | None = None
        self._prompt = 0
        self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="segstudio-click-ahead")

    # ---------------------------------------------------------------- requests (GUI thread)
    def load(self, spec: dict) -> None:
        """spec: the fields of inference.runtime.engine.ModelSpec (a dict: the GUI never imports torch).
        The model in use stays until the new one has loaded: a failed load leaves it answering."""
        self._request("click-load", lambda: self._do_load(spec), self.loaded.emit, self.load_failed.emit)

    def unload(self) -> None:
        self._image = None  # queued embeddings and prompts are skipped
        self._request("click-unload", self._do_unload, lambda _: self.unloaded.emit())

    def open(self, image_id: int, path: str, array, window, next_path: str | None = None,
             next_id: int | None = None) -> None:
        """The window shows this image: its embedding now, then the next image's (`next_id`) ahead.
        Queued requests for the image shown before are skipped when their turn comes; the embedding
        ahead goes on when the user opens that next image (the click thread then waits for it)."""
        self._image = image_id
        self._request("click-embed", lambda: self._do_embed(image_id, path, array, window, next_path, next_id),
                      lambda done: self.ready.emit(image_id) if done else None,
                      lambda msg: self.failed.emit(image_id, msg))

    def prompt(self, image_id: int, path: str, array, window, points, box, mask_input=None) -> int:
        """Candidate masks for the prompts on the open image; returns the prompt's number (the
        answer to an older prompt is dropped: only the newest one is decoded)."""
        self._prompt += 1
        n = self._prompt
        self._request("click-prompt", lambda: self._do_prompt(image_id, n, path, array, window, points, box,
                                                              mask_input),
                      lambda cands: self.candidates.emit(image_id, n, cands) if cands is not None else None,
                      lambda msg: self.failed.emit(image_id, msg))
        return n

    def shutdown(self, wait: float = 5.0) -> None:
        self._image = None  # an embedding ahead that has not started is skipped
        self._prefetch.shutdown(wait=False, cancel_futures=True)
        super().shutdown(wait)

    # ---------------------------------------------------------------- the model thread
    def _do_load(self, spec: dict) -> dict:
        from segstudio.inference.runtime.engine import ModelSpec, load_clicker
        model = load_clicker(ModelSpec(**spec), self.project)
        self.model, self._cache = model, None  # the old model goes only now: a failed load kept it
        return model_info(model, spec["arch"], model.device)

    def _do_unload(self) -> None:
        self.model, self._cache = None, None

    def _need_model(self):
        if self.model is None:
            raise RuntimeError("no click model loaded: choose one in the Model panel and press Load")
        if self._cache is None:
            self._cache = self.model.open_cache(self.project)
        return self.model, self._cache

    def _do_embed(self, image_id: int, path: str, array, window, next_path: str | None,
                  next_id: int | None = None) -> bool:
        if image_id != self._image:
            return False  # the user moved on before this started
        model, cache = self._need_model()
        from segstudio.inference.runtime.device import cpu_cores, cpu_threads
        try:
            with cpu_threads(cpu_cores()):  # the user waits for this one: all cores
                model.embedding_for(array, path, cache, window, cancel=lambda: image_id != self._image)
        except InterruptedError:
            return False  # the user moved on while it ran: stopped between the encoder's layers
        if next_path:
            # on a thread of its own: prompts on this image are decoded meanwhile (the encoder
            # pauses between its layers while a prompt is answered); a failure only means no head start
            self._prefetch.submit(self._do_prefetch, (image_id, next_id), next_path, model, cache)
        return True

    def _do_prefetch(self, wanted: tuple[int, int | None], path: str, model, cache) -> None:
        """`wanted`: the image shown when it was asked for and the next one: it stops when the user
        opens any other."""
        if self._image not in wanted:
            return
        from segstudio.inference.runtime.priority import run_in_background
        run_in_background()  # ahead of the user: never in the way of a click's decode
        from segstudio.core.imageio import auto_window, decode_image
        from segstudio.core.sequences import split_frame_path
        from segstudio.inference.runtime.device import cpu_cores, cpu_threads
        try:
            next_id = wanted[1]
            if next_id is not None and split_frame_path(path.replace("\\", "/")) is not None:
                image = self.project.decode(self.project.store.image(next_id))[0]  # a frame has no file
            else:
                image = decode_image(path, allow_large=self.project.allow_large)
            # the window the display will first show it with (session.load_image): the same key
            window = None if image.dtype.name == "uint8" else auto_window(image)
            with cpu_threads(max(1, cpu_cores() - 1)):  # in the background: a core left to the window
                model.embedding_for(image, path, cache, window, cancel=lambda: self._image not in wanted)
        except Exception as e:  # noqa: BLE001 (the next image is embedded when it is shown instead)
            log.info("click model: embedding %s ahead failed: %s", path, describe(e))

    def _do_prompt(self, image_id: int, n: int, path: str, array, window, points, box, mask_input):
        if image_id != self._image or n != self._prompt:
            return None  # another image, or a newer prompt: nobody waits for this answer
        from segstudio.inference.runtime.device import cpu_cores, cpu_threads
        from segstudio.inference.runtime.priority import PROMPTS
        model, cache = self._need_model()
        with PROMPTS.answering():  # training, re-prediction and the embedding ahead wait meanwhile
            try:
                with cpu_threads(cpu_cores()):  # tens of ms the user waits on: all cores
                    emb = model.embedding_for(array, path, cache, window, cancel=lambda: image_id != self._image)
                    return model.decode(emb, points, box, mask_input)
            except InterruptedError:
                return None  # the user moved on to another image
