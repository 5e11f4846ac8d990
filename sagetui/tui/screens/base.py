"""What every dashboard screen shares: a safe way for workers to reach the UI."""

from __future__ import annotations

from collections.abc import Callable

from textual import active_app
from textual.css.query import NoMatches
from textual.screen import Screen


class WorkerScreen(Screen):
    """A screen whose worker threads post results back to the UI thread.

    Why guarded: a read may still be in flight when the user leaves the screen
    or quits; its result must then be dropped, not applied to widgets that no
    longer exist (which would fail the worker and take the app down).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Screens are made on the UI thread while the app runs. Workers use this, not
        # `self.app`, which cannot be looked up once the screen has been closed.
        self.dash = active_app.get()

    def post_ui(self, fn: Callable, *args) -> None:
        """From a worker thread: run `fn(*args)` on the UI thread if this screen is still up."""

        def guarded() -> None:
            # In the stack = still open (a popped screen leaves it before its widgets go).
            if self in self.dash.screen_stack and self.is_attached:
                try:
                    fn(*args)
                except NoMatches:
                    # The screens compose their widgets once and never remove them, so a
                    # missing one means the app is tearing this screen down (on quit it
                    # stays in the stack while its widgets go): drop the result.
                    pass

        try:
            self.dash.call_from_thread(guarded)
        except RuntimeError:  # the app is shutting down
            pass
