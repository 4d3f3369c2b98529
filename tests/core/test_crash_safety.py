"""A child process killed with SIGKILL in the middle of a large import leaves a sound store."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

CHILD = r"""
import os, sys
from segstudio.core.project import Project
from segstudio.io.coco import import_coco
folder, coco_path, progress_path = sys.argv[1:4]
p = Project.open(folder)
def progress(done, total, item):
    # `done` images are committed when this is called for the next one
    with open(progress_path, "w") as f:
        f.write(str(done))
        f.flush()
        os.fsync(f.fileno())
import_coco(p, coco_path, progress=progress)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_during_import_leaves_a_sound_database(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    n_images, per_image, w, h = 300, 25, 64, 48
    blank = np.zeros((h, w), np.uint8)
    images, anns = [], []
    for i in range(n_images):
        Image.fromarray(blank).save(folder / f"{i:04d}.png")
        images.append({"id": i + 1, "file_name": f"{i:04d}.png", "width": w, "height": h})
        for k in range(per_image):
            x, y = (k * 7) % 50, (k * 5) % 36
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1 + k % 3, "iscrowd": 0,
                         "segmentation": [[x, y, x + 10, y, x + 10, y + 8, x + 3, y + 11]],
                         "bbox": [x, y, 10, 11], "area": 90})
    coco_path = tmp_path / "big.json"
    coco_path.write_text(json.dumps({"images": images, "annotations": anns,
                                     "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}))
    progress_path = tmp_path / "progress.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(coco_path), str(progress_path)],
                             env=env)
    deadline = time.time() + 120
    committed = 0
    try:
        while time.time() < deadline:
            if progress_path.exists():
                try:
                    committed = int(progress_path.read_text() or 0)
                except ValueError:
                    pass
                if committed >= 40:
                    break
            if child.poll() is not None:
                pytest.fail("the import finished before it could be killed")
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert 40 <= committed < n_images
    db = folder / ".segstudio" / "project.db"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = con.execute("SELECT COUNT(*) FROM images WHERE status='done'").fetchone()[0]
    assert done >= committed  # every image whose import was committed is there
    # and each image is all-or-nothing: all its regions or none
    per = con.execute("SELECT i.id, COUNT(r.id), i.status FROM images i LEFT JOIN regions r ON r.image_id=i.id "
                      "GROUP BY i.id").fetchall()
    for _, n, status in per:
        assert (n, status) in ((per_image, "done"), (0, "new")), (n, status)
    con.close()
    # the project opens and the import can be finished
    from segstudio.core.project import Project
    from segstudio.io.coco import import_coco
    p = Project.open(folder)
    import_coco(p, coco_path)
    assert p.store.region_count() == n_images * per_image
