"""The run detail's Pipelines tab: a pipeline run's stage breakdown."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from sagetui.tui.screens.detail import fill_pipelines

SUMMARY = {"extra": {"pipelines": {"rag": {
    "issued": 10, "completed": 9, "e2e_p50_ms": 800.0, "e2e_p95_ms": 1500.0,
    "e2e_p99_ms": 2100.0, "deadline_attainment": 0.8, "goodput_rps": 1.5,
    "stages": {"q": {"mean_ms": 20.0, "p99_ms": 40.0}, "docs": {"mean_ms": 5.0, "p99_ms": 6.0},
               "answer": {"mean_ms": 775.0, "p99_ms": 2000.0}}}}}}


class _One(App):
    def compose(self) -> ComposeResult:
        yield DataTable(id="t")


async def test_each_kind_then_its_stages_with_their_share():
    app = _One()
    async with app.run_test():
        table = app.query_one("#t", DataTable)
        fill_pipelines(table, SUMMARY)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows[0][0] == "rag" and rows[0][1] == "9/10 jobs" and "2100" in rows[0][3]
        assert [r[1] for r in rows[1:]] == ["q", "docs", "answer"]
        answer = rows[3]
        assert answer[2] == "775.0" and answer[5].count("█") == round(775 / 800 * 20)
