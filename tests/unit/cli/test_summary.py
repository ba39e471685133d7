"""The metrics table printed after a run keeps full names when stdout is a pipe or a log file."""

from ssmad.cli.train import print_summary
from ssmad.engine.runner import HEADLINE


def test_headline_names_and_categories_are_not_truncated(capsys) -> None:
    per = {"transistor_long_name": dict.fromkeys(HEADLINE, 0.5), "bottle": dict.fromkeys(HEADLINE, 0.25)}
    print_summary("/runs/v1", {**dict.fromkeys(HEADLINE, 0.375), "per_category": per}, "/runs/v1/report.html")
    out = capsys.readouterr().out
    for name in (*HEADLINE, "transistor_long_name", "bottle", "mean"):
        assert name in out, name
    assert "…" not in out
    assert "37.5" in out and "25.0" in out and "50.0" in out
