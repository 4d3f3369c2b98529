"""One formatter for an import/export report: the CLI and the GUI's dialog show the same lines."""

from segstudio.io.common import Report


def test_report_lines_name_every_kind_and_count_the_rest():
    rep = Report(images=2, regions=3, unmatched=["u1", "u2", "u3"], incomplete=["b.png"],
                 left_out=[("x.jpg", "truncated")], missing=[("gone.jpg", 4)])
    rep.note("classes added: cell")
    rep.error("c.json", "bad polygon")
    lines = rep.lines(2)
    assert lines == ["note: classes added: cell", "error: c.json: bad polygon",
                     "not marked done (annotations rejected): b.png", "left out (unreadable): x.jpg: truncated",
                     "left out (file missing): gone.jpg: its 4 annotations are kept in the project, not exported",
                     "unmatched (no such image in the folder): u1", "unmatched (no such image in the folder): u2",
                     "... and 1 more unmatched"]


def test_cli_and_dialog_show_the_same_lines(capsys):
    from segstudio.cli.common import print_report
    rep = Report(images=1, left_out=[("x.jpg", "truncated")], out="/tmp/o")
    print_report(rep, "exported")
    printed = [ln.strip() for ln in capsys.readouterr().out.splitlines()[1:]]
    assert printed == rep.lines()
