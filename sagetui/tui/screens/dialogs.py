"""Small modal dialogs: yes/no confirmation and the quit question."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something that cannot be undone (cancelling a run)."""

    BINDINGS = [("y", "answer(True)", "Yes"), ("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button(self.no, variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class QuitScreen(ModalScreen[str]):
    """Quitting with runs still going: leave them running, cancel them, or stay."""

    BINDINGS = [("l", "answer('leave')", "Leave running"), ("c", "answer('cancel')", "Cancel runs"),
                ("escape", "answer('stay')", "Stay")]

    def __init__(self, n_running: int) -> None:
        super().__init__()
        self.n_running = n_running

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"{self.n_running} run(s) started here are still going.\n"
                         "They keep running after the dashboard closes unless you cancel them.",
                         classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Leave running", variant="primary", id="leave")
                yield Button("Cancel runs", variant="error", id="cancel")
                yield Button("Stay", id="stay")

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_answer(self, value: str) -> None:
        self.dismiss(value)
