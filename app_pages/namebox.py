"""Name boxes (B1): a typed name that is not a person yet but begins existing names ("angel" while
"Angelina Jolie" exists) is confirmed before a new person is created; one the library has under another
case or spacing is simply that person. The browser side (Enter picks the highlighted existing name) is in
:func:`app_pages.common.keyboard`."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from app_pages import common
from aspl.service.people import same_name

_PENDING = "_name_question"
_CONFIRMED = "_names_confirmed_new"  # names this session chose to create although they begin existing ones
QUESTION_KEYS = {"enter": "kb_nameq_0", "c": "kb_nameq_new", "escape": "kb_nameq_cancel"}


def check(typed: str | None) -> tuple[str | None, list[str]]:
    """``(name, [])``: use ``name`` now (an existing person's name, or a new name unlike any other);
    ``(None, matches)``: ``typed`` is new but begins the existing ``matches``, so ask first."""
    if not typed:
        return None, []
    if typed in st.session_state.get(_CONFIRMED, ()):
        return typed, []
    matches = common.service().name_matches(typed)
    if len(matches) == 1 and same_name(matches[0], typed):
        return matches[0], []
    return (None, matches) if matches else (typed, [])


def ask_later(ctx: str, typed: str, matches: list[str], *args: Any) -> None:
    """From a callback: keep the question for ``ctx``; the page draws it with :func:`pending`."""
    st.session_state[_PENDING] = {"ctx": ctx, "typed": typed, "matches": matches, "args": list(args)}


def pending(ctx: str, on_pick: Callable[..., None]) -> dict[str, str]:
    """Draw the question kept for ``ctx`` (if any): ``on_pick(name, *args)`` gets the answer. Returns the
    question's keys for :func:`app_pages.common.keyboard` ({} when nothing is asked)."""
    q = st.session_state.get(_PENDING)
    if not q or q["ctx"] != ctx:
        return {}
    return question(q["typed"], q["matches"], on_pick, *q["args"])


def _answer(on_pick: Callable[..., None], name: str, new: bool, args: tuple) -> None:
    st.session_state.pop(_PENDING, None)
    if new:
        st.session_state.setdefault(_CONFIRMED, set()).add(name)
    on_pick(name, *args)


def _cancel(on_cancel: Callable[..., None] | None, args: tuple) -> None:
    st.session_state.pop(_PENDING, None)
    if on_cancel is not None:
        on_cancel(*args)


def question(typed: str, matches: list[str], on_pick: Callable[..., None], *args: Any,
             on_cancel: Callable[..., None] | None = None) -> dict[str, str]:
    """Ask whether ``typed`` means one of the existing ``matches`` (Enter: the first) or a new person (C);
    Esc cancels (``on_cancel(*args)``). ``on_pick(name, *args)`` gets the answer. Returns the question's keys."""
    shown = matches[:5]
    box = st.container(border=True, key="name_question")
    more = f" (and {len(matches) - len(shown)} more)" if len(matches) > len(shown) else ""
    box.markdown(f"**{typed}** is nobody yet, but it begins "
                 + ", ".join(f"**{m}**" for m in shown) + more + ". Who is it?")
    for i, name in enumerate(shown):
        box.button(("**Enter** · " if i == 0 else "") + name, key=f"kb_nameq_{i}", on_click=_answer,
                   args=(on_pick, name, False, args), width="stretch")
    box.button(f"**C** · A new person called {typed}", key="kb_nameq_new", on_click=_answer,
               args=(on_pick, typed, True, args), width="stretch")
    box.button("**Esc** · Cancel", key="kb_nameq_cancel", on_click=_cancel, args=(on_cancel, args))
    return dict(QUESTION_KEYS)
