"""Test helpers for the pages' keyboard snippet (``app_pages.common.keyboard``) and for typing a new name
into a name box, which AppTest's selectbox does not do by itself."""
from __future__ import annotations

import json
import re


def key_map(at) -> tuple[dict[str, str], str]:
    """The key map and tile grid of the keyboard snippet the page drew last."""
    bodies = [h.proto.body for h in at.get("html") if "__asplMap" in h.proto.body]
    assert bodies, "no keyboard snippet on the page"
    body = bodies[-1]
    keys = json.loads(re.search(r"doc\.__asplMap = (\{.*?\});", body).group(1))
    grid = json.loads(re.search(r"doc\.__asplGrid = (\".*?\");", body).group(1))
    return keys, grid


def allow_typed_names(monkeypatch) -> None:
    """Let ``Selectbox.set_value`` send a value that is not among the options (a name typed into a box made
    with ``accept_new_options=True``), as the browser does."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from streamlit.testing.v1.element_tree import Selectbox

    listed = Selectbox._widget_state

    def state(self):
        v = self.value
        if v is not None and self.format_func(v) not in self.options:
            ws = WidgetState()
            ws.id = self.id
            ws.string_value = str(v)
            return ws
        return listed.fget(self)

    monkeypatch.setattr(Selectbox, "_widget_state", property(state))
