"""Jinja2 prompt templates over sweep variables, strict about unknown names and bounded.

jinja2 is imported when the first template (text with a ``{``) is rendered.

A template renders at most ``max_chars`` characters (limits.prompt_chars):
rendering stops as soon as the text is longer, and no step of it may make a
string or list longer than that either (``{{ 'x' * 10**9 }}`` is refused
before it allocates anything), nor a number of more than :data:`MAX_INT_BITS`
bits. Every call and every loop item counts against :data:`MAX_STEPS`, so
that a template that would loop or recurse for hours is refused at once.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

# Calls and loop items one rendering may take (a prompt template needs a few dozen).
MAX_STEPS = 10_000
# The largest number a template may compute (far beyond any prompt's needs).
MAX_INT_BITS = 4096
# Filters and string methods whose integer arguments are widths of their result.
_WIDTH_FILTERS = frozenset({"center", "indent", "truncate", "wordwrap"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PERCENT_SPEC = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d+))?")
_NUMBER = re.compile(r"\d+")
# The globals that every loop's items and every ``~`` go through (see _bounded_tree).
_LOOP_GLOBAL = "__cosmos_loop_items"
_CONCAT_GLOBAL = "__cosmos_concat"


class TemplateProblem(ValueError):
    """A prompt template could not be rendered."""


class _Limit(TemplateProblem):
    """A template went past a limit while it rendered."""


def _environment(max_chars: int) -> ImmutableSandboxedEnvironment:
    """A sandboxed, bounded environment with StrictUndefined and nothing random."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        """Sandboxed, and every step is checked against the limits before it runs."""

        intercepted_binops = frozenset({"*", "**", "%", "+"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right, max_chars)
            return _sized(super().call_binop(context, operator, left, right), max_chars)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _step(__context)
            if getattr(__obj, "__name__", None) in _WIDTH_METHODS and isinstance(
                getattr(__obj, "__self__", None), str
            ):
                _check_widths(args, kwargs, max_chars)
            return _sized(super().call(__context, __obj, *args, **kwargs), max_chars)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            _check_format_string(value.__self__, max_chars)
            return wrapped

    # Manifests come from shared repositories: templates run sandboxed, so they
    # can read variables but never reach Python internals. Prompts are plain
    # text for a model, never HTML: no autoescaping.
    env = Bounded(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        # Every {{ value }} that is output: no longer than a prompt may be.
        finalize=lambda value: _sized(value if isinstance(value, str) else str(value), max_chars),
    )
    # A run id is the hash of the rendered text: nothing random may render.
    env.filters.pop("random", None)
    env.globals.pop("lipsum", None)
    env.filters = {name: _bounded_filter(name, f, max_chars) for name, f in env.filters.items()}
    return env


def _step(context: Any) -> None:
    """Count one step of the rendering in its context's budget."""
    budget = context.get("__cosmos_steps")
    if budget is not None:
        budget.take()


class _Steps:
    """The steps one rendering may still take."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Limit(
                f"takes more than {self.limit} steps (calls and loop items): "
                "a prompt template must render at once"
            )

    def items(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.take()
            yield item


def _check_binop(operator: str, left: Any, right: Any, max_chars: int) -> None:
    sequences = (str, list, tuple)
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if right * math.log2(abs(left)) > MAX_INT_BITS:
            raise _Limit(f"{left} ** {right}: a number too large (more than {MAX_INT_BITS} bits)")
    elif operator == "*":
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise _Limit(f"a number too large (more than {MAX_INT_BITS} bits)")
            return
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, sequences) and _is_int(times) and len(seq) * times > max_chars:
                raise _too_long(len(seq) * times, max_chars)
    elif operator == "%" and isinstance(left, str):
        for width, precision in _PERCENT_SPEC.findall(left):
            for number in (width, precision):
                if number and int(number) > max_chars:
                    raise _too_long(int(number), max_chars)
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        if len(left) + len(right) > max_chars:
            raise _too_long(len(left) + len(right), max_chars)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_widths(args: tuple[Any, ...], kwargs: dict[str, Any], max_chars: int) -> None:
    for value in (*args, *kwargs.values()):
        if _is_int(value) and value > max_chars:
            raise _too_long(value, max_chars)


def _check_format_string(text: str, max_chars: int) -> None:
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # str.format reports it
    for _, _, spec, _ in fields:
        for number in _NUMBER.findall(spec or ""):
            if int(number) > max_chars:
                raise _too_long(int(number), max_chars)


def _sized(value: Any, max_chars: int) -> Any:
    """``value``, unless it is a string or list longer than a prompt may be."""
    if isinstance(value, (str, list, tuple)) and len(value) > max_chars:
        raise _too_long(len(value), max_chars)
    return value


def _too_long(size: int, max_chars: int) -> _Limit:
    return _Limit(
        f"would render more than {max_chars} characters ({size}); the limit is limits.prompt_chars"
    )


def _bounded_filter(name: str, function: Callable[..., Any], max_chars: int) -> Callable[..., Any]:
    """A filter whose widths and result are checked (its jinja2 markers kept)."""

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name in _WIDTH_FILTERS:
            _check_widths(args[1:], kwargs, max_chars)
        if name == "format" and args and isinstance(args[0], str):
            _check_binop("%", args[0], None, max_chars)
        return _sized(function(*args, **kwargs), max_chars)

    return bounded


def _bounded_tree(env: ImmutableSandboxedEnvironment, text: str) -> Any:
    """The parsed template, each loop's items counted as steps and each ``~`` sized."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    class Bound(NodeTransformer):
        def visit_For(self, node: nodes.For) -> nodes.Node:
            self.generic_visit(node)
            node.iter = nodes.Call(nodes.Name(_LOOP_GLOBAL, "load"), [node.iter], [], None, None)
            return node

        def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
            self.generic_visit(node)
            return nodes.Call(nodes.Name(_CONCAT_GLOBAL, "load"), node.nodes, [], None, None)

    return Bound().visit(env.parse(text))


def _concat(max_chars: int) -> Callable[..., str]:
    """``a ~ b ~ ...``: the parts as text, joined, unless the result is too long."""

    def concat(*parts: Any) -> str:
        texts = [part if isinstance(part, str) else str(part) for part in parts]
        size = sum(len(text) for text in texts)
        if size > max_chars:
            raise _too_long(size, max_chars)
        return "".join(texts)

    return concat


class PromptRenderer:
    """Renders prompt templates; each distinct template is compiled once.

    One renderer serves one expansion, where every sweep point renders the
    same few templates with other values.

    Args:
        max_chars: The most characters a rendered prompt may have (limits.prompt_chars).
    """

    def __init__(self, max_chars: int = 4000) -> None:
        self._max_chars = max_chars
        self._env: ImmutableSandboxedEnvironment | None = None
        self._compiled: dict[str, jinja2.Template] = {}

    def render(self, text: str, context: dict[str, Any]) -> str:
        """Render ``text`` as a sandboxed jinja2 template with StrictUndefined.

        Text without template syntax is returned unchanged.

        Args:
            text: The prompt text or template.
            context: Variables the template may use.

        Raises:
            TemplateProblem: unknown variable, syntax error, unsafe access, or a limit.
        """
        if "{" not in text:
            return text
        import jinja2
        from jinja2.sandbox import SecurityError

        try:
            return self._render(self._template(text), context)
        except TemplateProblem:
            raise
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
        except RecursionError as exc:
            raise TemplateProblem("the template recurses without end") from exc
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            raise TemplateProblem(f"template failed: {type(exc).__name__}: {exc}") from exc

    def _render(self, template: jinja2.Template, context: dict[str, Any]) -> str:
        """Render, stopping as soon as the text is longer than a prompt may be."""
        steps = _Steps(MAX_STEPS)
        chunks: list[str] = []
        size = 0
        variables = {
            **context,
            "__cosmos_steps": steps,
            _LOOP_GLOBAL: steps.items,
            _CONCAT_GLOBAL: _concat(self._max_chars),
        }
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > self._max_chars:
                raise _too_long(size, self._max_chars)
            chunks.append(chunk)
        return "".join(chunks)

    def _template(self, text: str) -> jinja2.Template:
        template = self._compiled.get(text)
        if template is None:
            if self._env is None:
                self._env = _environment(self._max_chars)
            template = self._compiled[text] = self._env.from_string(_bounded_tree(self._env, text))
        return template
