"""``vault serve``: the web view of the repository, read-only."""

from __future__ import annotations

import secrets
import socket

import click

from ..errors import VaultError
from .common import Context, pass_ctx

LOOPBACK = ("127.0.0.1", "::1", "localhost")
"""Hosts that only this machine reaches: binding one needs no token."""


class CannotListen(VaultError):
    """``vault serve`` cannot listen where it was asked (the port is taken, the host is not
    this machine's)."""

    kind = "io"

    def __init__(self, host: str, port: int, why: str) -> None:
        super().__init__(f"cannot listen on {host} port {port}: {why}")
        self.host = host
        self.port = port
        self.why = why


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host`` and ``port``, listening.

    Raises:
        CannotListen: the address is taken or not this machine's.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise CannotListen(host, port, exc.strerror or str(exc)) from None


def address(host: str, port: int, token: str | None) -> str:
    """The address to open: ``http://HOST:PORT/``, with ``?token=`` when one is needed."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="The port."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the address in a browser.")
@click.option(
    "--token",
    metavar="TOKEN",
    help="Require this token on every request (a host other than 127.0.0.1, ::1 or localhost"
    " gets a generated one when none is given).",
)
@pass_ctx
def serve(ctx: Context, host: str, port: int, open_browser: bool, token: str | None) -> None:
    """Serve the web view: versions, curves, diffs, lineage, pins and storage, read-only.

    Pages and their JSON (under /api, equal to the commands' --json) are read from the
    repository as it is at each request; nothing is written to it. With --repo s3://... the
    remote repository is served. Stop with Ctrl-C.
    """
    from ..web import require_extra

    require_extra()
    import uvicorn

    from ..web import create_app

    if token == "":
        raise click.BadParameter("must not be empty", param_hint="--token")
    if token is None and host not in LOOPBACK:
        token = secrets.token_urlsafe(24)
    app = create_app(ctx.repo(writes=False), token=token)
    sock = listen(host, port)
    url = address(host, port, token)
    click.echo(f"serving {app.state.site.describe()} read-only at {url}")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, (url,)).start()
    config = uvicorn.Config(app, log_level="warning", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


COMMANDS = [serve]
