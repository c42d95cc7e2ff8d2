"""Every notebook in JupyterLab under headless Chromium: run all cells once, no error outputs, no
widget-manager errors, every panel rendered with its title, Run button, figure and numbers; on the
FGSM and FedAVG panels a control is changed and Run clicked, and the new numbers and figure appear."""
import os
import pathlib
import re

import pytest

from .conftest import ROOT, check_panel, panel_status, shutdown_kernels, slug, start_run, wait_run_done

pytestmark = pytest.mark.browser

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Could not find a widget",
                 "Error creating widget", "widget model not found")
OPEN_TIMEOUT_MS = 120_000
SCALE = float(os.environ.get("AIJACK_BROWSER_TIMEOUT_SCALE", "1"))  # a busy machine may need more
RUN_TIMEOUT_MS = int(480_000 * SCALE)
PANEL_RUN_TIMEOUT_MS = int(180_000 * SCALE)
# (panel title, slider label, new value (the other one if the slider shows it already), check that the result shows it)
RERUNS = (
    ("FGSM — Fast Gradient Sign Method", "ε (L∞ budget)", ("0.1", "0.2"),
     lambda numbers, v: re.search(rf"^eps\s+{re.escape(v)}\s*$", numbers, re.M)),
    ("FedAVG — Federated Averaging", "rounds", ("2", "3"),  # one accuracy per round
     lambda numbers, v: len(re.search(r"^accuracy_per_round\s+\[(.*)\]", numbers, re.M).group(1).split(",")) == int(v)),
)


def open_notebook(page, lab, name):
    # ?reset: a fresh workspace, so only this notebook is open (and only its kernel starts)
    page.goto(f"{lab['url']}/lab/tree/notebooks/{name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=OPEN_TIMEOUT_MS)
    page.wait_for_function("document.body.innerText.includes('| Idle')", timeout=OPEN_TIMEOUT_MS)


def run_all_cells(page):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # done when every code cell shows an execution count (or one failed) and the kernel is idle again
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
            const idle = document.body.innerText.includes('| Idle');
            // a cell that raised stops "Run All": the cells after it never get a count
            const failed = [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
                .some(e => /Traceback|\\w+Error\\b/.test(e.innerText));
            return idle && (failed || (prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t))));
        }""",
        timeout=RUN_TIMEOUT_MS, polling=500,
    )


def assert_no_errors(page, name):
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    errors = [t for t in errors if re.search(r"Traceback|\w+Error\b", t)]
    assert not errors, f"{name}: error outputs:\n" + "\n---\n".join(errors)[:4000]
    text = page.inner_text(".jp-Notebook")
    bad = [w for w in WIDGET_ERRORS if w in text]
    assert not bad, f"{name}: widget-manager errors {bad}"
    assert not page.console_errors, f"{name}: console errors {page.console_errors[:5]}"


def assert_panels_rendered(page, name, artifacts):
    panels = page.locator(".jp-Notebook .aijack-panel")
    # a notebook may show a panel before running it: click Run on those (all at once) and wait
    not_run = [panels.nth(i) for i in range(panels.count())
               if panel_status(panels.nth(i)).inner_text().strip() == "ready"]
    for panel in not_run:
        start_run(page, panel)
    for panel in not_run:
        status = wait_run_done(page, panel, PANEL_RUN_TIMEOUT_MS)
        assert status == "done", f"{name}: {panel.locator('.aijack-panel-title').inner_text()}: {status[:500]}"
    titles = []
    for i in range(panels.count()):
        panel = panels.nth(i)
        title = check_panel(panel, name)
        titles.append(title)
        panel.screenshot(path=str(artifacts / f"lab-{pathlib.Path(name).stem}-{i:02d}-{slug(title)}.png"))
    return titles


def set_slider(panel, label, choices):
    """Type a new value into an ipywidgets slider's readout (as a user does) and commit it with Enter;
    returns the value."""
    slider = panel.locator(".widget-slider", has=panel.page.locator(".widget-label", has_text=label)).first
    readout = slider.locator(".widget-readout")
    value = choices[1] if float(readout.inner_text()) == float(choices[0]) else choices[0]
    readout.click()
    readout.press("Control+a")
    readout.type(value)
    readout.press("Enter")
    shown = readout.inner_text().strip()
    assert float(shown) == float(value), f"slider {label!r} shows {shown!r}, not {value}"
    return value


def rerun_with_new_value(page, title, label, choices, must_show, artifacts, name):
    panel = page.locator(".aijack-panel", has=page.locator(".aijack-panel-title", has_text=title)).first
    img = panel.locator("img.aijack-figure")
    src_before, numbers_before = img.get_attribute("src"), panel.locator(".aijack-result").inner_text()
    value = set_slider(panel, label, choices)
    start_run(page, panel)
    status = wait_run_done(page, panel, PANEL_RUN_TIMEOUT_MS)
    assert status == "done", f"{title}: {status}"
    numbers = panel.locator(".aijack-result").inner_text()
    assert numbers != numbers_before, f"{title}: same numbers after changing {label}"
    assert img.get_attribute("src") != src_before, f"{title}: figure not replaced"
    check_panel(panel, name)
    assert must_show(numbers, value), f"{title}: {label} = {value} not in the result: {numbers[:300]}"
    panel.screenshot(path=str(artifacts / f"lab-{pathlib.Path(name).stem}-rerun-{slug(title)}.png"))


@pytest.fixture
def lab(lab_server):
    """The lab server; after the test (and after `page` saved its failure screenshot) every kernel is
    shut down, so the next notebook starts with the CPU and memory free."""
    yield lab_server
    shutdown_kernels(lab_server)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, page, artifacts, name):
    open_notebook(page, lab, name)
    run_all_cells(page)
    assert_no_errors(page, name)
    if name == "00_gallery.ipynb":
        # its panels sit in closed accordion sections; test_voila opens every one and clicks Run
        assert page.locator(".aijack-gallery").is_visible()
        assert page.locator(".aijack-gallery > .lm-TabBar .lm-TabBar-tab").count() == 3
    else:
        titles = assert_panels_rendered(page, name, artifacts)
        assert titles, f"{name} shows no panel"
        for title, label, value, must_show in RERUNS:
            if any(t.startswith(title) for t in titles):
                rerun_with_new_value(page, title, label, value, must_show, artifacts, name)
    assert_no_errors(page, name)
    page.screenshot(path=str(artifacts / f"lab-{pathlib.Path(name).stem}.png"))
