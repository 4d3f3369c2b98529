"""The one ClassMapper: importers and model output find or create project classes through it."""

import threading

from segstudio.core.project import Project
from segstudio.inference.runtime import classmap
from segstudio.io.common import ClassMapper


def test_inference_uses_the_io_mapper():
    assert classmap.ClassMapper is ClassMapper


def test_get_creates_once_with_colour_and_ignore(project):
    m = ClassMapper(project)
    cat = m.get("cat", (1, 2, 3))
    assert (cat.name, cat.color, cat.ignore) == ("cat", (1, 2, 3), False)
    assert m.get("cat", (9, 9, 9)) == cat  # found, colour of the existing class kept
    ign = m.get("__ignore__", ignore=True)
    assert ign.ignore
    assert [c.name for c in project.store.classes()] == ["cat", "__ignore__"]


def test_names_are_stripped_and_case_sensitive(project):
    project.store.add_class("cat")
    m = ClassMapper(project)
    assert m.get("  cat\t").name == "cat"
    assert m.get("Cat").name == "Cat"  # a different class: the store's names keep case
    assert [c.name for c in project.store.classes()] == ["cat", "Cat"]


def test_a_class_added_behind_the_mappers_back_is_found_not_duplicated(project):
    m = ClassMapper(project)
    dog = project.store.add_class("dog")
    assert m.get("dog") == dog


def test_create_false_drops_and_counts(project):
    project.store.add_class("cat")
    m = ClassMapper(project, create=False)
    assert m.get("cat").name == "cat"
    assert m.get("dog") is None and m.get(" dog ") is None
    assert m.dropped == {"dog": 2}
    assert [c.name for c in project.store.classes()] == ["cat"]


def test_model_labels(project):
    cat = project.store.add_class("cat")
    m = ClassMapper(project, ["__background__", "cat", "N/A", "dog"])
    assert m(1) is None and m(3) is None  # torchvision's placeholder slots
    assert m(0) is None and m(5) is None  # out of range
    assert m(2) == cat.id
    assert m(4) == project.store.class_by_name("dog").id


def test_threads_create_a_class_once(image_folder):
    p = Project.open(image_folder)
    try:
        m = ClassMapper(p, ["cell"])
        out = []
        ts = [threading.Thread(target=lambda: out.append(m(1))) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(set(out)) == 1 and [c.name for c in p.store.classes()] == ["cell"]
    finally:
        p.close()
