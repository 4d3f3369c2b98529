import json

import pytest

from segstudio.cli import main
from tests.io.helpers import annotated_project


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_scans_a_new_folder(image_folder, capsys):
    code, out, _ = run(capsys, "info", image_folder)
    assert code == 0
    assert "images: 5" in out
    code, out, _ = run(capsys, "info", image_folder, "--json")
    d = json.loads(out)
    assert d["images"] == 5 and d["status"]["new"] == 5


def test_import_export_cycle(tmp_path, capsys):
    p = annotated_project(tmp_path / "src")
    p.close()
    out = tmp_path / "out.json"
    code, o, _ = run(capsys, "export", tmp_path / "src", "--format", "coco", "--out", out, "--status", "done")
    assert code == 0 and out.exists() and "12 regions" in o
    import shutil
    shutil.copytree(tmp_path / "src", tmp_path / "dst", ignore=shutil.ignore_patterns(".segstudio"))
    code, o, _ = run(capsys, "import", tmp_path / "dst", "--format", "coco", out)
    assert code == 0 and "12 regions" in o
    code, o, _ = run(capsys, "import", tmp_path / "dst", "--format", "coco", out)
    assert "0 regions" in o and "12 duplicate" in o
    code, o, _ = run(capsys, "info", tmp_path / "dst", "--json")
    d = json.loads(o)
    assert d["status"]["done"] == 3 and d["regions"] == 12
    for fmt in ("labelmap", "instancemap", "labelme", "yolo", "voc"):
        code, o, e = run(capsys, "export", tmp_path / "dst", "--format", fmt, "--out", tmp_path / fmt)
        assert code == 0, e


def test_import_status_option(tmp_path, capsys):
    p = annotated_project(tmp_path / "src")
    p.close()
    run(capsys, "export", tmp_path / "src", "--format", "coco", "--out", tmp_path / "c.json")
    import shutil
    shutil.copytree(tmp_path / "src", tmp_path / "dst", ignore=shutil.ignore_patterns(".segstudio"))
    code, _, _ = run(capsys, "import", tmp_path / "dst", "--format", "coco", tmp_path / "c.json",
                     "--status", "predicted")
    d = json.loads(run(capsys, "info", tmp_path / "dst", "--json")[1])
    assert d["status"]["predicted"] == 3


def test_project_option_keeps_folder_clean(image_folder, tmp_path, capsys):
    db = tmp_path / "store" / "p.db"
    code, out, _ = run(capsys, "--project", db, "info", image_folder)
    assert code == 0 and db.exists() and not (image_folder / ".segstudio").exists()
    code, out, _ = run(capsys, "info", image_folder, "--project", db)
    assert code == 0


@pytest.mark.parametrize("argv,needle", [
    (["info", "/no/such/folder"], "folder not found"),
    (["import", "{f}", "--format", "coco", "/no/such.json"], "source not found"),
    (["import", "{f}", "--format", "coco", "{bad}"], "not valid JSON"),
    (["export", "{f}", "--format", "coco", "--out", "x.json", "--status", "finished"], "unknown status"),
])
def test_bad_input_exits_nonzero_with_one_line(image_folder, tmp_path, capsys, argv, needle):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    argv = [a.format(f=image_folder, bad=bad) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("segstudio: error:")


def test_console_script_entry_point(image_folder):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "segstudio", "info", str(image_folder)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "images: 5" in r.stdout
