"""The web view (``vault serve``): versions, curves, diffs, lineage, pins and storage in a browser.

Needs the ``web`` extra (Starlette, uvicorn, Jinja2). See :func:`create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..repo import Repository

__all__ = ["create_app"]


def create_app(repo: Repository, token: str | None = None) -> Starlette:
    """The web view of ``repo``; see :func:`vault.web.app.create_app`.

    Raises:
        MissingExtra: the ``web`` extra is not installed.
    """
    require_extra()
    from .app import create_app as make

    return make(repo, token)


def require_extra() -> None:
    """Check that the ``web`` extra's packages import.

    Raises:
        MissingExtra: one of them is missing.
    """
    import importlib.util

    from ..errors import MissingExtra

    for name in EXTRA:
        if importlib.util.find_spec(name) is None:
            raise MissingExtra("the web view", ", ".join(EXTRA), "web")


EXTRA = ("starlette", "uvicorn", "jinja2")
"""The packages of the ``web`` extra."""
