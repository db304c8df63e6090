"""BashScriptBuilder: multi-step remote scripts with every argument quoted."""

from __future__ import annotations

import shlex


class BashScriptBuilder:
    """Builds a ``bash -c`` script from argument lists.

    Each step is an argument list joined with POSIX quoting, so no user text
    (prompt, name, path) can become shell syntax. The script stops at the
    first failing step (``set -euo pipefail``).
    """

    def __init__(self) -> None:
        self._lines: list[str] = ["set -euo pipefail"]

    def run(self, *argv: str) -> BashScriptBuilder:
        """Add one command."""
        if not argv:
            raise ValueError("a step needs at least a program name")
        self._lines.append(shlex.join(argv))
        return self

    def run_to_file(self, path: str, *argv: str) -> BashScriptBuilder:
        """Add one command whose stdout goes to ``path``."""
        self._lines.append(f"{shlex.join(argv)} > {shlex.quote(path)}")
        return self

    def shell(self, text: str) -> BashScriptBuilder:
        """Add shell text as is: only fixed text of ours, or a line the user configured.

        Anything that carries user data (names, paths, prompts) goes through
        :meth:`run`, :meth:`cd` or :meth:`export`, which quote it.
        """
        self._lines.append(text)
        return self

    def cd(self, path: str) -> BashScriptBuilder:
        """Change directory for the following steps."""
        self._lines.append(f"cd {shlex.quote(path)}")
        return self

    def export(self, name: str, value: str) -> BashScriptBuilder:
        """Set an environment variable for the following steps."""
        if not name.isidentifier():
            raise ValueError(f"not a valid variable name: {name!r}")
        self._lines.append(f"export {name}={shlex.quote(value)}")
        return self

    def script(self) -> str:
        """The script text."""
        return "\n".join(self._lines) + "\n"

    def argv(self) -> list[str]:
        """The script as a command: ``bash -c SCRIPT``."""
        return ["bash", "-c", self.script()]
