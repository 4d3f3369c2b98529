"""`segstudio predict --ray` on a local Ray runtime (2 CPUs): the same regions as local predict,
every image committed exactly once when a worker dies mid-run, resume after an interruption, a
missing file as that image's error. Skipped where Ray is not installed (`.[cluster]`)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[cluster]'")

from segstudio.core.project import Project  # noqa: E402
from segstudio.inference.runtime.engine import ModelSpec, load_segmenter, predict_project  # noqa: E402
from segstudio.inference.cluster.predict import ImagePredictor, images_to_predict, predict_on_ray  # noqa: E402
from tests.inference.helpers import blob_image, tiny_unet_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow
N = 8


@pytest.fixture(scope="module")
def runtime():
    import sys

    import ray.cloudpickle
    # the workers cannot import this test module: its fault-injecting predictor travels by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    from segstudio.inference.cluster.connect import connect
    # segstudio's own local runtime: on 127.0.0.1 with a token, as users get it (not one on every interface)
    connect(None, num_cpus=2, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A UNet whose random weights mark blobs: real regions to compare, not empty maps."""
    d = tmp_path_factory.mktemp("ck")
    for seed in range(40):
        ck = tiny_unet_checkpoint(d / f"u{seed}.pt", classes=("blob",), seed=seed)
        seg = load_segmenter(ModelSpec("unet", str(ck), "cpu"))
        n = sum(len(p.detections()) for p in seg.predict_batch([blob_image(48, 64, seed=s) for s in range(3)]))
        if n >= 3:
            return ck
    pytest.fail("no seed gave a UNet that finds regions")


def make_folder(root, n=N, broken=False):
    root.mkdir()
    for i in range(n):
        Image.fromarray(blob_image(48, 64, seed=i)).save(root / f"{i:02d}.png")
    if broken:
        (root / "broken.jpg").write_bytes(b"not an image")
    return root


def regions_by_image(project):
    names = {c.id: c.name for c in project.store.classes()}
    return {rec.path: sorted((r.source, names[r.class_id], r.x, r.y, r.mask.shape, r.mask.tobytes(), r.score)
                             for r in project.store.regions(rec.id))
            for rec in project.store.images()}


def test_ray_gives_the_regions_local_predict_gives(runtime, checkpoint, tmp_path):
    a = Project.open(make_folder(tmp_path / "a", broken=True))
    b = Project.open(make_folder(tmp_path / "b", broken=True))
    spec = ModelSpec("unet", str(checkpoint), "cpu")
    local = predict_project(a, load_segmenter(spec, a), ("new",), batch=2)
    seen = []
    rep = predict_on_ray(b, spec, ("new",), None, workers=2, batch=3, progress=lambda d, t, p: seen.append((d, t)))
    assert local.regions > 0 and rep.regions == local.regions and rep.images == local.images == N
    assert regions_by_image(a) == regions_by_image(b)
    assert {r.path: r.status for r in a.store.images()} == {r.path: r.status for r in b.store.images()}
    assert [p for p, _ in rep.errors] == ["broken.jpg"] and b.store.image_by_path("broken.jpg").error
    assert seen[-1] == (N + 1, N + 1) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # nothing left to do: a second run predicts nothing
    again = predict_on_ray(b, spec, ("new", "predicted"), None, workers=1)
    assert again.images == 0 and regions_by_image(b) == regions_by_image(a)


class DiesOnce(ImagePredictor):
    """Kills its own worker process in the middle of its first batch, once per test (a flag file):
    Ray restarts the actor and retries the batch."""

    def __init__(self, spec, threads=1, allow_large=False, flag=""):
        super().__init__(spec, threads, allow_large)
        self.flag = flag

    def __call__(self, batch):
        if self.flag and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(1)  # a lost node, as far as Ray can tell
        return super().__call__(batch)


def test_a_worker_killed_mid_run_leaves_every_image_predicted_once(runtime, checkpoint, tmp_path, monkeypatch):
    p = Project.open(make_folder(tmp_path / "imgs"))
    ref = Project.open(make_folder(tmp_path / "ref"))
    spec = ModelSpec("unet", str(checkpoint), "cpu")
    predict_project(ref, load_segmenter(spec, ref), ("new",), batch=2)
    flag = tmp_path / "died"

    class Flagged(DiesOnce):
        def __init__(self, spec, threads=1, allow_large=False):
            super().__init__(spec, threads, allow_large, flag=str(flag))
    rep = predict_on_ray(p, spec, ("new",), None, workers=2, batch=2, predictor_cls=Flagged)
    assert flag.exists()  # a worker did die
    assert rep.images == N and not rep.errors
    assert regions_by_image(p) == regions_by_image(ref)  # each image's regions once, not twice
    assert all(r.status == "predicted" for r in p.store.images())


def test_an_interrupted_run_resumes_where_it_stopped(runtime, checkpoint, tmp_path):
    p = Project.open(make_folder(tmp_path / "imgs"))
    spec = ModelSpec("unet", str(checkpoint), "cpu")
    seg = load_segmenter(spec, p)
    ids = p.store.image_ids(statuses=("new",))
    stopped = predict_project(p, seg, ("new",), batch=1, image_ids=ids[:3])  # the first three, then a stop
    left = images_to_predict(p, ("new", "predicted"), seg.name)
    with_regions = set(p.store.image_ids_with_source(seg.name))
    assert with_regions <= set(stopped.written) and not (set(left) & with_regions)
    rep = predict_on_ray(p, spec, ("new",), None, workers=2, batch=2)
    assert rep.images == N - 3
    assert all(r.status == "predicted" for r in p.store.images())


def test_a_path_the_workers_cannot_read_is_that_images_error(runtime, checkpoint, tmp_path):
    folder = make_folder(tmp_path / "imgs", n=3)
    p = Project.open(folder)
    shutil.move(str(folder / "01.png"), str(tmp_path / "elsewhere.png"))  # gone after it was listed
    rep = predict_on_ray(p, ModelSpec("unet", str(checkpoint), "cpu"), ("new",), None, workers=1, batch=3)
    assert rep.images == 2 and [path for path, _ in rep.errors] == ["01.png"]
    assert p.store.image_by_path("01.png").error


def test_without_ray_one_clear_line(monkeypatch):
    import builtins

    from segstudio.inference.cluster import predict as ray_predict
    real = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ray_predict.RayUnavailable, match=r'pip install -e "\.\[cluster\]"'):
        ray_predict.import_ray()


def test_images_are_predicted_as_arrays_equal_to_local(checkpoint):
    """The UDF alone (no Ray): what it returns decodes to what local post-processing encodes."""
    import pickle
    import tempfile

    from segstudio.inference.runtime.postprocess import encode_detections, payload
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.png")
        Image.fromarray(blob_image(48, 64, seed=1)).save(path)
        udf = ImagePredictor({"arch": "unet", "weights": str(checkpoint), "device": "cpu"})
        out = udf({"image_id": np.array([7]), "path": np.array([path], dtype=object)})
        seg = load_segmenter(ModelSpec("unet", str(checkpoint), "cpu"))
        want = encode_detections(payload(seg.predict_batch([np.asarray(Image.open(path))])[0]))
        assert out["error"][0] == "" and pickle.loads(out["regions"][0]) == want


def test_cli_predict_ray(runtime, checkpoint, tmp_path, capsys):
    """`segstudio predict FOLDER --model unet --weights FILE --ray --workers 2` (the runtime of the
    fixture is the one it joins: Ray is initialised in this process)."""
    import json

    from segstudio.cli import main
    folder = make_folder(tmp_path / "imgs", n=4)
    code = main(["predict", str(folder), "--model", "unet", "--weights", str(checkpoint), "--device", "cpu",
                 "--ray", "--workers", "2", "--batch", "2", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 4 and out["regions"] > 0 and out["device"].startswith("Ray: 2 worker(s)")
    assert main(["predict", str(folder), "--model", "unet", "--workers", "2"]) == 2  # --workers without --ray


def test_a_worker_short_of_memory_or_of_a_path_stores_nothing_on_the_image(checkpoint, tmp_path, monkeypatch):
    """The UDF alone: a worker that runs out of memory says so ('memory'), a path it cannot read is
    'io'; the driver stores neither when it can read the file itself (only a decode error, or a path
    gone for the driver too, is the image's own error)."""
    from segstudio.core import imageio
    from segstudio.inference.cluster import predict as ray_predict
    folder = make_folder(tmp_path / "imgs", n=2)
    p = Project.open(folder)
    try:
        recs = p.store.images()
        udf = ImagePredictor({"arch": "unet", "weights": str(checkpoint), "device": "cpu"})
        real = imageio.decode_image

        def short(path, **kw):
            if path.endswith("00.png"):
                raise imageio.NotEnoughMemory("not enough memory to decode this image")
            if path.endswith("01.png"):
                raise PermissionError(13, "Permission denied", path)
            return real(path, **kw)
        monkeypatch.setattr(imageio, "decode_image", short)
        paths = np.array([str(p.abspath(r)) for r in recs], dtype=object)
        out = udf({"image_id": np.array([r.id for r in recs]), "path": paths})
        assert list(out["kind"]) == ["memory", "io"] and all(out["error"])
        assert not ray_predict._says_something_about_the_file(p, recs[0], "memory")
        assert not ray_predict._says_something_about_the_file(p, recs[1], "io")  # the driver reads it
        assert ray_predict._says_something_about_the_file(p, recs[1], "file")
        os.remove(p.abspath(recs[1]))
        assert ray_predict._says_something_about_the_file(p, recs[1], "io")  # gone for the driver too
    finally:
        p.close()


def test_a_stacks_frames_are_decoded_from_the_stack_by_the_workers(checkpoint, tmp_path):
    """The UDF alone: a frame's row names the stack file and the frame number; the worker decodes
    that frame (what local prediction on that frame gives), and a frame past the end is its error."""
    import pickle

    import tifffile

    from segstudio.inference.cluster import predict as ray_predict
    from segstudio.inference.runtime.postprocess import encode_detections, payload
    d = tmp_path / "stack"
    d.mkdir()
    frames = np.stack([blob_image(48, 64, seed=s)[..., 0] for s in (1, 2, 3)])
    tifffile.imwrite(d / "s.tif", frames, photometric="minisblack")
    p = Project.open(d)
    try:
        recs = p.store.images()
        rows = [ray_predict._row(p, r) for r in recs]
        assert [r["frame"] for r in rows] == [0, 1, 2] and rows[0]["path"] == str((d / "s.tif").resolve())
        udf = ImagePredictor({"arch": "unet", "weights": str(checkpoint), "device": "cpu"})
        out = udf({"image_id": np.array([7, 8]), "path": np.array([rows[1]["path"]] * 2, dtype=object),
                   "frame": np.array([1, 5])})
        seg = load_segmenter(ModelSpec("unet", str(checkpoint), "cpu"))
        want = encode_detections(payload(seg.predict_batch([p.load_image(recs[1])])[0]))
        assert out["error"][0] == "" and pickle.loads(out["regions"][0]) == want
        assert out["error"][1] and out["kind"][1] == "file"
    finally:
        p.close()
