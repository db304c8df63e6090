"""Jinja2 prompt templates over sweep variables, strict about unknown names."""

from __future__ import annotations

from typing import Any

import jinja2

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701
    keep_trailing_newline=False,
)


class TemplateProblem(ValueError):
    """A prompt template could not be rendered."""


def render_prompt(text: str, context: dict[str, Any]) -> str:
    """Render ``text`` as a jinja2 template with StrictUndefined.

    Text without template syntax is returned unchanged.

    Args:
        text: The prompt text or template.
        context: Variables the template may use.

    Raises:
        TemplateProblem: unknown variable or template syntax error.
    """
    if "{" not in text:
        return text
    try:
        return _ENV.from_string(text).render(**context)
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(k for k in context if not k.startswith("_"))) or "none"
        raise TemplateProblem(f"unknown template variable: {exc.message} (known: {known})") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}") from exc
