"""`cosmos ui`: the web app on the project's database and outputs (uvicorn + Starlette)."""

from __future__ import annotations

import click

from cosmos_workflow.cli.common import CliContext


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--open", "open_browser", is_flag=True, help="Open the app in the web browser.")
@click.pass_obj
def ui(obj: CliContext, host: str, port: int, open_browser: bool) -> None:
    """Browse, compare and rate runs and sweeps in a web browser (local web app).

    It binds 127.0.0.1 (this machine only) by default. Any other address
    needs the access token printed at start: open the printed URL once (a
    cookie keeps it). Stop it with Ctrl-C; sweeps keep running.
    """
    import threading
    import webbrowser

    from cosmos_workflow.ui.app import UiOptions, access_token, build_app, make_server

    api = obj.api(all_targets=True)
    options = UiOptions(host=host, port=port)
    options = UiOptions(host=host, port=port, token=access_token(options))
    app = build_app(api, options)
    server = make_server(app, host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host == '0.0.0.0' else shown}:{port}/"  # noqa: S104
    if options.token:
        url += f"?token={options.token}"
        click.echo(f"access token: {options.token}")
    click.echo(f"cosmos ui: {url}  (Ctrl-C stops it)")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server.run()
