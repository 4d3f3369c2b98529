"""Class lists: comments, the escape that lets a class name start with #, round trips."""

from segstudio.core.classes import LabelClass, read_class_file, write_class_file


def test_hash_lines_are_comments_and_escaped_hash_is_a_name(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("# my classes\n  # indented comment\ncell\n\\#1\n\\# of cells #00ff00\n\\\\x\n\\\n",
                 encoding="utf-8")
    entries = read_class_file(f)
    assert [e.name for e in entries] == ["cell", "#1", "# of cells", "\\x"]
    assert entries[2].color == (0, 255, 0)


def test_written_names_starting_with_hash_or_backslash_read_back(tmp_path):
    f = tmp_path / "classes.txt"
    classes = [LabelClass(1, "#1", (1, 2, 3)), LabelClass(2, "# of cells", (4, 5, 6)),
               LabelClass(3, "\\x", (7, 8, 9)), LabelClass(4, "a#b", (10, 11, 12))]
    write_class_file(f, classes)
    assert [(e.name, e.color) for e in read_class_file(f)] == [(c.name, c.color) for c in classes]


def test_a_name_with_a_line_break_is_refused_and_nothing_is_written(tmp_path):
    import pytest

    f = tmp_path / "classes.txt"
    for name in ["two\nlines", "road\u2028side", "a\x85b", "a\vb", "a\x1cb"]:
        with pytest.raises(ValueError, match="line break or control character") as e:
            write_class_file(f, [LabelClass(1, "cell", (1, 2, 3)), LabelClass(2, name, (4, 5, 6))])
        assert repr(name) in str(e.value)
        assert not f.exists()
