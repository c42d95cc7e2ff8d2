"""The gallery in Voila (no code, widgets only): every tab and section opens, every registered panel
renders, and clicking Run on each (a whole section at once) gives a figure and numbers."""
import re

import pytest

from aijack_lab.widgets.catalog import CATALOG, TYPES
from aijack_lab.widgets.registry import entries

from .conftest import check_panel, slug, start_run, wait_run_done

pytestmark = pytest.mark.browser
LOAD_TIMEOUT_MS = 180_000
RUN_TIMEOUT_MS = 300_000


def test_gallery_in_voila_every_panel_runs(page, voila_server, artifacts):
    page.goto(f"{voila_server['url']}/?token={voila_server['token']}")
    page.wait_for_selector(".aijack-gallery", timeout=LOAD_TIMEOUT_MS)
    registered = entries()
    expected_titles = sorted(e.panel_cls.title for e in registered.values())
    assert page.locator(".aijack-panel").count() == len(registered)
    assert page.locator(".aijack-unavailable").count() == len(CATALOG) - len(registered)
    # no code in Voila: only the widgets
    assert "import gallery" not in page.inner_text("body")
    tab_titles = page.locator(".aijack-gallery > .lm-TabBar .lm-TabBar-tabLabel").all_inner_texts()
    assert tab_titles == list(TYPES)
    seen = []
    for t, tab_title in enumerate(tab_titles):
        page.locator(".aijack-gallery > .lm-TabBar .lm-TabBar-tab").nth(t).click()
        accordion = page.locator(".aijack-gallery > .widget-tab-contents > .widget-accordion").nth(t)
        sections = accordion.locator(":scope > .jupyter-widget-Collapse")
        for s in range(sections.count()):
            section = sections.nth(s)
            header = section.locator(":scope > .jupyter-widget-Collapse-header")
            header.click()  # open the section
            panels = section.locator(".aijack-panel")
            n = panels.count()
            for i in range(n):  # a whole section runs at once: the panels run in kernel threads
                panel = panels.nth(i)
                panel.locator("button.aijack-run").wait_for(state="visible", timeout=30_000)
                start_run(page, panel)
            for i in range(n):
                panel = panels.nth(i)
                title = panel.locator(".aijack-panel-title").inner_text()
                status = wait_run_done(page, panel, RUN_TIMEOUT_MS)
                assert status == "done", f"{tab_title}/{header.inner_text()}: {title}: {status[:500]}"
                check_panel(panel, f"Voila {tab_title}")
                shot = f"voila-{len(seen):02d}-{tab_title}-{slug(header.inner_text())}-{slug(title)}.png"
                panel.screenshot(path=str(artifacts / shot))
                seen.append(title)
            header.click()  # close it again
    assert sorted(seen) == expected_titles
    assert not page.locator("text=Error displaying widget").count()
    assert not page.console_errors, page.console_errors[:5]
