"""The `sagetui` command: a click group whose subcommands live in sagetui/commands/.

With no subcommand it opens the dashboard (sagetui/tui), imported lazily so the
whole run path works without a terminal UI.
"""

from __future__ import annotations

import importlib

import click

# (module in sagetui.commands, attribute) — each file owns one command or group.
_COMMANDS = ("runs", "run", "export", "engine", "gateway", "suite", "demo", "fidelity")


@click.group(invoke_without_command=True)
@click.option("--db", envvar="SAGETUI_DB", default="sagetui.db", show_default=True,
              type=click.Path(dir_okay=False), help="Run store (SQLite). Env: SAGETUI_DB.")
@click.version_option(package_name="sagetui")
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """sagetui: run, watch, store and export LLM + embedding serving experiments."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if ctx.invoked_subcommand is None:
        from sagetui.tui.launch import open_dashboard

        open_dashboard(db)


def _register() -> None:
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"sagetui.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet must not break the rest
            if exc.name == f"sagetui.commands.{name}":
                continue
            raise
        main.add_command(module.command)


_register()
