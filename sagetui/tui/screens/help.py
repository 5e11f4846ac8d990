"""The help screen: what each screen is for and its keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

from sagetui.tui import TEXTUAL_VERSION

HELP = """\
# sagetui dashboard

Everything comes from the run store (SQLite); runs write to it, the dashboard
reads it. `ctrl+p` opens the command palette with every action.

## Runs (start screen)
`enter` details · `space` mark for compare · `c` compare marked ·
`/` filter · `m` live monitor · `l` launch · `e` export · `x` cancel a
running run · `R` rerun a finished run (same seed, linked to it) · `[` `]`
previous/next page · `r` reload · click a header to sort (click again to
reverse) or `s` to sort by the cursor's column.

Filter: words match name, suite, mode, policy, status, tags; `key=value`
(`!=` `<` `>` `<=` `>=`) matches a column (`status=running`, `tag=paper`) or
the resolved config (`workload.rate>=100`, `rate=50`, `backends.0.kind=sim`).

## Run detail
Tabs: summary (per-class percentiles), latency (histogram + CDF), series,
config, machine, events. `m` monitors it if it is running; `R` reruns it.
The headline names the run it reruns and its reruns.

## Live monitor
Attaches to a `running` run; refreshes twice a second. `x` cancels it
(asks first; the run keeps what it measured). `req 237/~230`: the planned
count is nominal (rate × time); a Poisson schedule sends a few more or fewer.

## Launch
Pick a built-in suite (tick *quick* for its CI-sized version), a shipped
config or your TOML file; adjust mode/policy/rate/duration/repetitions/
backends (a config: names to keep; a suite: a TOML file of [[backends]]);
*Validate* checks it, *Start* (`ctrl+s`) starts it. The run is a child process: closing the
dashboard leaves it running unless you choose to cancel it.

## Compare
Per-class metrics side by side with the change relative to the first run;
`*` `**` `***` mark a latency distribution that differs at p < 0.05 / 0.01 /
0.001 (Mann-Whitney U). CDFs overlaid below.

## Export
Table, figure or bundle, in a format, to a folder, through the exports
package. The written paths (or the reason it failed) are shown.

`escape` goes back · `q` quits · `?` this help.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(f"{HELP}\n\n_textual {TEXTUAL_VERSION}_")
        yield Footer()
