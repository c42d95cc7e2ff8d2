"""``gallery()``: every Table 1 algorithm by type and subcategory, its panel or its status."""
import html
from typing import Optional, Sequence

import ipywidgets as W

from .catalog import CATALOG, TYPES
from .registry import entries


def gallery(types: Optional[Sequence[str]] = None) -> W.Tab:
    """A tab per Table 1 type, an accordion per subcategory, one entry per algorithm.

    Algorithms without a panel yet are listed as not available (never as a fake panel).
    """
    registered = entries()
    wanted = list(types) if types else list(TYPES)
    unknown = set(wanted) - set(TYPES)
    if unknown:
        raise ValueError(f"unknown types {sorted(unknown)}; choose from {TYPES}")
    tabs = []
    for type_ in wanted:
        subcats = []
        for a in CATALOG:
            if a.type == type_ and a.subcategory not in subcats:
                subcats.append(a.subcategory)
        sections = []
        for sub in subcats:
            items = []
            for a in CATALOG:
                if a.type != type_ or a.subcategory != sub:
                    continue
                entry = registered.get(a.key)
                if entry is None:
                    items.append(W.HTML(
                        f"<div class='aijack-unavailable' style='color:#777'><b>{html.escape(a.name)}</b>"
                        f" — not available yet (planned API: <code>{html.escape(a.api)}</code>)</div>"))
                else:
                    items.append(entry.create().widget)
            sections.append(W.VBox(items))
        acc = W.Accordion(children=sections)
        for i, sub in enumerate(subcats):
            acc.set_title(i, sub)
        tabs.append(acc)
    tab = W.Tab(children=tabs)
    for i, t in enumerate(wanted):
        tab.set_title(i, t)
    tab.add_class("aijack-gallery")
    return tab
