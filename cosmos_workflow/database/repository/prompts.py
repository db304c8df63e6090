"""Prompts: storing them (typed in, or derived from a run) and finding them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select

from cosmos_workflow.database.engine import WRITE_LOCK
from cosmos_workflow.database.ids import ids_starting_with
from cosmos_workflow.database.models import Prompt, Run, Sweep
from cosmos_workflow.database.repository.core import (
    IN_CHUNK,
    RepositoryCore,
    insert_rows,
    stored_among,
)
from cosmos_workflow.database.search import LIKE_ESCAPE, SearchHits, find_text, like_literal
from cosmos_workflow.errors import NotFoundFailure
from cosmos_workflow.manifest.specs import ResolvedPrompt


class PromptQueries(RepositoryCore):
    """Queries and changes of prompts, and id and text look-ups."""

    def add_prompts(self, prompts: Iterable[ResolvedPrompt]) -> int:
        """Store prompts not stored yet; return how many were new."""
        unique = {p.id: p for p in prompts}
        with self._session(WRITE_LOCK) as session:
            existing = stored_among(session, Prompt.id, list(unique))
            now = self._clock.now()
            rows = [
                {
                    "id": prompt_id,
                    "name": prompt.name,
                    "text": prompt.text,
                    "negative_prompt": prompt.negative,
                    "inputs": prompt.inputs.to_dict(),
                    "created_at": now,
                }
                for prompt_id, prompt in unique.items()
                if prompt_id not in existing
            ]
            insert_rows(session, Prompt, rows)
            return len(rows)

    def add_derived_prompt(
        self, prompt: ResolvedPrompt, parent_id: str, origin: dict[str, Any]
    ) -> bool:
        """Store a prompt made from another one, linked to it.

        A prompt already stored keeps what it has. Only a derived prompt that
        lost its parent (the parent was deleted, then made again) is linked
        again; a prompt typed in by hand with the same text and inputs is
        never adopted, so deleting the parent "with its children" cannot
        take it.

        Returns:
            True if the prompt was new.
        """
        with self._session(WRITE_LOCK) as session:
            stored = session.get(Prompt, prompt.id)
            if stored is not None:
                derived = stored.origin is not None
                if derived and stored.parent_id is None and stored.id != parent_id:
                    stored.parent_id = parent_id
                return False
            session.add(
                Prompt(
                    id=prompt.id,
                    name=prompt.name,
                    text=prompt.text,
                    negative_prompt=prompt.negative,
                    inputs=prompt.inputs.to_dict(),
                    created_at=self._clock.now(),
                    parent_id=parent_id,
                    origin=origin,
                    origin_run_id=origin.get("run"),
                )
            )
            return True

    def prompt_made_by(self, run_id: str, kind: str) -> Prompt | None:
        """The derived prompt of origin ``kind`` that names run ``run_id``, if stored.

        Args:
            run_id: The run that made it (an enhancement) or that it was made for.
            kind: Its origin kind ("enhanced", "upscale_input").
        """
        with self._session() as session:
            query = select(Prompt).where(Prompt.origin_run_id == run_id).order_by(Prompt.id)
            for prompt in session.scalars(query):
                if (prompt.origin or {}).get("kind") == kind:
                    return prompt
        return None

    def child_prompts(self, prompt_ids: Iterable[str]) -> list[Prompt]:
        """Prompts made from any of ``prompt_ids`` (enhanced prompts, upscale inputs)."""
        ids = list(prompt_ids)
        with self._session() as session:
            query = select(Prompt).where(Prompt.parent_id.in_(ids)).order_by(Prompt.id)
            return list(session.scalars(query)) if ids else []

    def get_prompt(self, prompt_id: str) -> Prompt:
        """Return one prompt. Raises NotFoundFailure."""
        return self._get(Prompt, prompt_id, "prompt")

    def prompt_ids_named(self, names: Iterable[str]) -> dict[str, list[tuple[str, bool]]]:
        """The prompts called each of ``names``: (id, True if made from another prompt).

        Names no prompt has are left out. Enhanced prompts and upscale
        inputs are made from another prompt and keep its name.
        """
        wanted = sorted(set(names))
        found: dict[str, list[tuple[str, bool]]] = {}
        with self._session() as session:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                query = select(Prompt.name, Prompt.id, Prompt.origin_run_id)
                query = query.where(Prompt.name.in_(chunk)).order_by(Prompt.id)
                for name, prompt_id, made_by in session.execute(query):
                    found.setdefault(name, []).append((prompt_id, made_by is not None))
        return found

    def list_prompts(self, limit: int | None = None) -> list[Prompt]:
        """Prompts, newest first."""
        with self._session() as session:
            query = select(Prompt).order_by(Prompt.created_at.desc(), Prompt.id).limit(limit)
            return list(session.scalars(query))

    def prompts_named(self, name: str) -> list[str]:
        """Ids of every prompt whose name is exactly ``name`` (derived ones too)."""
        return [prompt_id for prompt_id, _ in self.prompt_ids_named([name]).get(name, [])]

    def delete_prompt(self, prompt_id: str) -> list[Run]:
        """Delete a prompt and its runs; return the deleted runs."""
        with self._session(WRITE_LOCK) as session:
            prompt = session.get(Prompt, prompt_id)
            if prompt is None:
                raise NotFoundFailure(f"no prompt with id {prompt_id}")
            runs = list(session.scalars(select(Run).where(Run.prompt_id == prompt_id)))
            for run in runs:
                session.delete(run)
            session.delete(prompt)
            return runs

    def find_ids(self, prefix: str) -> list[str]:
        """Ids of prompts, runs and sweeps starting with ``prefix``."""
        pattern = like_literal(prefix) + "%"
        found: list[str] = []
        with self._session() as session:
            for model in (Prompt, Run, Sweep):
                found += session.scalars(
                    select(model.id).where(model.id.like(pattern, escape=LIKE_ESCAPE)).limit(5)
                )
        return found

    def ids_with_prefix(
        self, prefix: str, kinds: Sequence[str], limit: int
    ) -> list[tuple[str, str]]:
        """(id, label) of prompts/runs/sweeps (``kinds``: ps, rs, sw) whose id starts so."""
        with self._session() as session:
            return ids_starting_with(session, prefix, kinds, limit)

    def search(self, text: str, limit: int) -> SearchHits:
        """Prompts containing ``text`` (literally, ignoring case) and their runs."""
        with self._session() as session:
            return find_text(session, text, limit)
