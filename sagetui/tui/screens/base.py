"""What every dashboard screen shares: a safe way for workers to reach the UI."""

from __future__ import annotations

from collections.abc import Callable

from textual.screen import Screen


class WorkerScreen(Screen):
    """A screen whose worker threads post results back to the UI thread.

    Why guarded: a read may still be in flight when the user leaves the screen
    or quits; its result must then be dropped, not applied to widgets that no
    longer exist (which would fail the worker and take the app down).
    """

    def post_ui(self, fn: Callable, *args) -> None:
        """From a worker thread: run `fn(*args)` on the UI thread if this screen is still up."""

        def guarded() -> None:
            if self.is_attached:
                fn(*args)

        try:
            self.app.call_from_thread(guarded)
        except RuntimeError:  # the app is shutting down
            pass
