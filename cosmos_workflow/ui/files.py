"""Files of `cosmos ui`: output and input videos (HTTP Range), and sweep thumbnails.

Only videos are served, by resolved path: those under the output tree or
the project's inputs/ folder (``/files/outputs/...``, ``/files/inputs/...``)
but not in a hidden folder there (the runner's staging and cache), and the
input videos the prompts name wherever they are (``/files/known/<absolute
path>``). A path that resolves elsewhere (``..``, an absolute path, a
symlink out, a NUL byte), any other file (the database, a page or script
put in inputs/) and a missing file are answered 404. Range requests get
206 with Content-Range (416 past the end): videos seek without downloading.
"""

from __future__ import annotations

import time
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cosmos_workflow.local_ai.video_dir import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from cosmos_workflow.api import CosmosAPI

ROOT_NAMES = ("outputs", "inputs")
KNOWN = "known"
# How long the list of the prompts' input files is reused before it is read again.
KNOWN_TTL_S = 5.0


class FileAccess:
    """Which files the app may serve, and their URLs.

    Args:
        api: The project's API (it names the roots and the input files).
    """

    def __init__(self, api: CosmosAPI) -> None:
        self._api = api
        self._roots = {
            name: root.resolve()
            for name, root in zip(ROOT_NAMES, api.views.file_roots(), strict=True)
        }
        self._known: set[Path] = set()
        self._known_at = float("-inf")
        self._lock = Lock()

    def _known_files(self) -> set[Path]:
        with self._lock:
            if time.monotonic() - self._known_at > KNOWN_TTL_S:
                self._known = {path.resolve() for path in self._api.views.input_files()}
                self._known_at = time.monotonic()
            return self._known

    def allowed(self, path: Path) -> bool:
        """True if ``path`` (resolved) is one the app may serve."""
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            return False
        for root in self._roots.values():
            if path.is_relative_to(root):
                return not any(part.startswith(".") for part in path.relative_to(root).parts)
        return path in self._known_files()

    def url(self, path: Path | str | None) -> str | None:
        """The /files/ URL of a file the app may serve, else None."""
        if path is None:
            return None
        try:
            resolved = Path(path).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        if not resolved.is_file():
            return None
        plain = Path(path).absolute()
        for name, root in self._roots.items():
            for candidate in (plain, resolved):
                if candidate.is_relative_to(root) and self.allowed(resolved):
                    return f"/files/{name}/{quote(candidate.relative_to(root).as_posix())}"
        if resolved in self._known_files():
            return f"/files/{KNOWN}/{quote(resolved.as_posix().lstrip('/'))}"
        return None

    def resolve(self, where: str, relative: str) -> Path | None:
        """The file a /files/WHERE/RELATIVE URL names, if the app may serve it."""
        if where == KNOWN:
            candidate = Path("/") / relative
        elif where in self._roots:
            candidate = self._roots[where] / relative
        else:
            return None
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte
            return None
        if not resolved.is_file() or not self.allowed(resolved):
            return None
        return resolved


def file_url(request: Request, path: Path | str | None) -> str | None:
    """A /files/ URL of ``path`` if the app may serve it (templates: ``file_url(path)``)."""
    return request.app.state.files.url(path)


def routes() -> list[BaseRoute]:
    """/files/{where}/{path} and /thumbs/{sweep_id}/{run_id}.jpg."""
    from starlette.routing import Route

    return [
        Route("/files/{where}/{path:path}", serve_file, methods=["GET", "HEAD"]),
        Route("/thumbs/{sweep_id}/{run_id}.jpg", serve_thumbnail, methods=["GET", "HEAD"]),
    ]


def _not_found() -> Response:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("not found", 404)


def serve_file(request: Request) -> Response:
    """A file the app may serve (Range requests: 206 or 416), else 404."""
    from starlette.responses import FileResponse

    params: dict[str, Any] = request.path_params
    found = request.app.state.files.resolve(params["where"], params["path"])
    if found is None:
        return _not_found()
    return FileResponse(found)


def serve_thumbnail(request: Request) -> Response:
    """A succeeded run's thumbnail (a JPEG, made on first request), else 404."""
    from starlette.responses import FileResponse

    api: CosmosAPI = request.app.state.api
    params: dict[str, Any] = request.path_params
    found = api.views.thumbnail(params["sweep_id"], params["run_id"])
    if found is None:
        return _not_found()
    return FileResponse(found, headers={"Cache-Control": "max-age=60"})
