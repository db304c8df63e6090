"""Jinja2 prompt templates over sweep variables, strict about unknown names.

jinja2 is imported when the first template (text with a ``{``) is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment


def _environment() -> ImmutableSandboxedEnvironment:
    """A sandboxed environment with StrictUndefined and nothing random."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Manifests come from shared repositories: templates run sandboxed, so they
    # can read variables but never reach Python internals. Prompts are plain
    # text for a model, never HTML: no autoescaping.
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    # A run id is the hash of the rendered text: nothing random may render.
    env.filters.pop("random", None)
    env.globals.pop("lipsum", None)
    return env


class TemplateProblem(ValueError):
    """A prompt template could not be rendered."""


class PromptRenderer:
    """Renders prompt templates; each distinct template is compiled once.

    One renderer serves one expansion, where every sweep point renders the
    same few templates with other values.
    """

    def __init__(self) -> None:
        self._env: ImmutableSandboxedEnvironment | None = None
        self._compiled: dict[str, jinja2.Template] = {}

    def render(self, text: str, context: dict[str, Any]) -> str:
        """Render ``text`` as a sandboxed jinja2 template with StrictUndefined.

        Text without template syntax is returned unchanged.

        Args:
            text: The prompt text or template.
            context: Variables the template may use.

        Raises:
            TemplateProblem: unknown variable, syntax error, or unsafe access.
        """
        if "{" not in text:
            return text
        import jinja2
        from jinja2.sandbox import SecurityError

        try:
            return self._template(text).render(**context)
        except jinja2.UndefinedError as exc:
            known = ", ".join(sorted(k for k in context if not k.startswith("_"))) or "none"
            raise TemplateProblem(
                f"unknown template variable: {exc.message} (known: {known})"
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"template syntax error: {exc.message}") from exc
        except SecurityError as exc:
            raise TemplateProblem(f"template not allowed: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"template error: {exc}") from exc
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise TemplateProblem(f"template failed: {type(exc).__name__}: {exc}") from exc

    def _template(self, text: str) -> jinja2.Template:
        template = self._compiled.get(text)
        if template is None:
            if self._env is None:
                self._env = _environment()
            template = self._compiled[text] = self._env.from_string(text)
        return template
