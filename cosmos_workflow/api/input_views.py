"""Read model of the web app's inputs page: input folders, their videos, who uses them.

The folders are those under the project's ``inputs/`` that hold a video,
and those of every stored prompt's input videos. Each video has its probed
facts (frames, size, fps, codec: local_ai/probe.py, probed once per content
by the API's ProbeCache), its role (color or a control modality) and the
prompts that use it; each folder the runs of those prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos_workflow.errors import NotFoundFailure
from cosmos_workflow.local_ai.probe import ProbeError
from cosmos_workflow.local_ai.video_dir import VIDEO_SUFFIXES, role_of
from cosmos_workflow.outputs.thumbnails import ThumbnailStore
from cosmos_workflow.sweeps.workspace import Workspace
from cosmos_workflow.utils.hashing import sha256_file

# Where the thumbnails of input videos are kept (under the output tree).
INPUT_THUMBS = Path("thumbs") / "inputs"
# The most input folders listed (a project's inputs/ may be large).
MAX_FOLDERS = 500
# The runs named per folder (the rest are counted).
RUNS_SHOWN = 20


class InputViews:
    """The inputs known to the project, with facts and uses.

    Args:
        ws: The workspace of the API.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        # sha256 of each file seen, by (path, size, mtime): each content is hashed once.
        self._hashes: dict[tuple[str, int, int], str] = {}

    @property
    def root(self) -> Path:
        """The project's inputs folder."""
        return self._ws.settings.project_dir / "inputs"

    def inputs(self, text: str | None = None) -> dict[str, Any]:
        """Every input folder with its videos, prompts and runs (``text``: folders matching it).

        Returns:
            ``{root, folders: [{path, relative, videos: [{path, name, role,
            sha256, info, error, prompts}], prompts: [{id, name}], runs: [..],
            runs_total}]}``.
        """
        prompts = self._ws.repository.list_prompts() if self._ws.database_exists() else []
        runs = self._ws.repository.list_runs() if prompts else []
        users: dict[str, list[dict[str, str]]] = {}
        for prompt in prompts:
            for path in _input_paths(prompt.inputs):
                users.setdefault(path, []).append({"id": prompt.id, "name": prompt.name})
        folders = self._folders({str(Path(p).parent) for p in users})
        if text:
            folders = [f for f in folders if text.lower() in str(f).lower()]
        runs_of: dict[str, list[Any]] = {}
        for run in runs:
            runs_of.setdefault(run.prompt_id, []).append(run)
        return {
            "root": str(self.root),
            "folders": [self._folder(folder, users, runs_of) for folder in folders[:MAX_FOLDERS]],
            "folders_total": len(folders),
        }

    def folders(self) -> list[str]:
        """The input folders that exist (for a choice of folder): quick, nothing probed."""
        prompts = self._ws.repository.list_prompts() if self._ws.database_exists() else []
        used = {str(Path(path).parent) for p in prompts for path in _input_paths(p.inputs)}
        return [str(folder) for folder in self._folders(used) if folder.is_dir()]

    def _folders(self, used: set[str]) -> list[Path]:
        """The folders under inputs/ that hold a video, and those prompts use, sorted."""
        found = set()
        if self.root.is_dir():
            for path in self.root.rglob("*"):
                if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
                    found.add(path.parent)
        found.update(Path(folder) for folder in used)
        return sorted(found)

    def _folder(
        self, folder: Path, users: dict[str, list[dict[str, str]]], runs_of: dict[str, list[Any]]
    ) -> dict[str, Any]:
        videos = []
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            videos = [
                self._video(path, users.get(str(path), [])) for path in files if path.is_file()
            ]
        prompts = {p["id"]: p for video in videos for p in video["prompts"]}
        for path, using in users.items():
            if Path(path).parent == folder:
                prompts.update((p["id"], p) for p in using)
        runs = [run for prompt_id in prompts for run in runs_of.get(prompt_id, [])]
        try:
            relative = str(folder.relative_to(self.root))
        except ValueError:
            relative = str(folder)
        return {
            "path": str(folder),
            "relative": relative,
            "exists": folder.is_dir(),
            "videos": videos,
            "prompts": list(prompts.values()),
            "runs": [
                {"id": run.id, "status": run.status.value, "rating": run.rating}
                for run in runs[:RUNS_SHOWN]
            ],
            "runs_total": len(runs),
        }

    def _video(self, path: Path, prompts: list[dict[str, str]]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "path": str(path),
            "name": path.name,
            "role": role_of(path),
            "prompts": prompts,
            "info": None,
            "error": None,
        }
        try:
            digest = self._sha256(path)
            info = self._ws.probes.video(path, digest)
        except (OSError, ProbeError) as exc:
            entry["error"] = str(exc)
            return entry
        entry["sha256"] = digest
        entry["info"] = {
            "frames": info.frames,
            "size": info.size,
            "fps": info.fps_text,
            "codec": info.codec,
            "pixel_format": info.pixel_format,
        }
        return entry

    def _sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_file(path)
        return self._hashes[key]

    def thumbnail(self, video: str) -> Path:
        """The thumbnail (JPEG) of an input video, made on first use.

        Args:
            video: The path of a video the inputs page lists.

        Raises:
            NotFoundFailure: not an input video of the project, or it cannot be decoded.
        """
        path = Path(video)
        if not self._known(path):
            raise NotFoundFailure(f"not an input video of this project: {video}")
        store = ThumbnailStore(self._ws.store.root / INPUT_THUMBS)
        digest = self._sha256(path)
        made = store.thumbnail(f"in_{digest[:16]}", path, digest)
        if made is None:
            raise NotFoundFailure(f"no thumbnail of {video}: it cannot be decoded")
        return made

    def _known(self, path: Path) -> bool:
        """True for a video file under inputs/ or one that a stored prompt uses."""
        if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
            return False
        if path.resolve().is_relative_to(self.root.resolve()):
            return True
        if not self._ws.database_exists():
            return False
        return any(
            str(path) in _input_paths(prompt.inputs)
            for prompt in self._ws.repository.list_prompts()
        )


def _input_paths(inputs: dict[str, Any]) -> list[str]:
    """The paths of a prompt's input videos (its color video and control videos)."""
    paths = []
    video = (inputs or {}).get("video")
    if isinstance(video, dict) and video.get("path"):
        paths.append(str(video["path"]))
    for entry in ((inputs or {}).get("controls") or {}).values():
        if isinstance(entry, dict) and entry.get("path"):
            paths.append(str(entry["path"]))
    return paths
