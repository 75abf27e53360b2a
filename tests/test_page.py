"""`calcinosis.book.page.show_built`: a section built in the page's kernel is glued under the
names `show` glues, and a stale result is shown as a warning."""

from __future__ import annotations

import pandas as pd
import pytest

from calcinosis.book import page
from calcinosis.report.sections import Figure, Section, Table


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    shown: list[tuple[str, object]] = []
    monkeypatch.setattr(page, "_glue", lambda name, value: shown.append((name, value)))
    monkeypatch.setattr(page, "_glue_markdown", lambda name, text: shown.append((name, text)))
    monkeypatch.setattr(page, "_glue_figure", lambda name, png, pdf: shown.append((name, png)))
    monkeypatch.setattr(page, "_display_markdown", lambda text: shown.append(("", text)))
    return shown


def built() -> Section:
    section = Section("power", {"plan_alpha": 0.01})
    section.tables["plan_tab_answer"] = Table(pd.DataFrame({"n": [12]}))
    section.figures["plan_fig_curves"] = Figure(png=b"png", svg=b"svg")
    return section


def test_every_item_is_glued_under_its_name(outputs: list) -> None:
    assert page.show_built(built()) == {"plan_alpha": 0.01}
    assert [name for name, _ in outputs] == ["plan_alpha", "plan_tab_answer", "plan_fig_curves"]
    assert "12" in outputs[1][1]


def test_a_stale_result_is_shown_as_a_warning(outputs: list) -> None:
    page.show_built(built(), "the code changed")
    assert outputs[-1][0] == "" and "Stale result" in outputs[-1][1]
    assert "the code changed" in outputs[-1][1]
