import shutil

import numpy as np

from segstudio.core.project import Project
from segstudio.core.region import Region
from tests.conftest import make_image


def annotated_project(root, n_images=3, w=80, h=60):
    """A project whose regions exercise the hard cases: holes, overlaps, several parts, a crowd
    region, an ignore class, and a non-ASCII file name."""
    names = [f"im{i}.png" for i in range(n_images - 1)] + ["sub/ïmage ü.png"]
    for i, n in enumerate(names):
        make_image(root / n, w, h, seed=i)
    p = Project.open(root)
    s = p.store
    cat, dog = s.add_class("cat"), s.add_class("dog")
    ign = s.add_class("__ignore__", ignore=True)
    for k, rec in enumerate(s.images()):
        regs = []
        ring = np.zeros((20, 20), bool)
        ring[2:18, 2:18] = True
        ring[7:12, 7:12] = False  # a hole
        regs.append(Region(0, cat.id, ring, 5 + k, 5, z=1))
        two = np.zeros((10, 30), bool)
        two[1:8, 1:9] = True
        two[2:9, 18:29] = True  # two parts
        regs.append(Region(0, dog.id, two, 30, 30, z=2))
        regs.append(Region(0, dog.id, np.ones((12, 12), bool), 15, 15, z=3))  # overlaps the ring
        regs.append(Region(0, cat.id, np.ones((6, 8), bool), 60, 5, z=4, iscrowd=True))
        regs.append(Region(0, ign.id, np.ones((5, 5), bool), 70, 50, z=5))
        ids = s.reserve_region_ids(len(regs))
        for r, i in zip(regs, ids):
            r.id = i
        s.save_regions(rec.id, regs, status="done")
    return p


def fresh_copy(project, dst):
    """A new project over a copy of the same images, with no annotations."""
    shutil.copytree(project.folder, dst, ignore=shutil.ignore_patterns(".segstudio"))
    return Project.open(dst)


def masks_by_image(project, include_ignore=True):
    out = {}
    classes = {c.id: c for c in project.store.classes()}
    for rec in project.store.images():
        w, h = project.image_size(rec)
        out[rec.path] = [(classes[r.class_id].name, r.full_mask(w, h), r.iscrowd)
                         for r in project.store.regions(rec.id)
                         if include_ignore or not classes[r.class_id].ignore]
    return out


def iou(a, b):
    u = np.logical_or(a, b).sum()
    return 1.0 if u == 0 else np.logical_and(a, b).sum() / u
