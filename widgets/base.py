"""The panel anatomy shared by every algorithm (DESIGN.md):

title and description · parameter controls · Run / Stop / progress · figure and numbers ·
a Code view with the library calls that reproduce the run · ``panel.result``.

A panel subclass declares ``params`` and implements three methods:

- ``compute(values, progress) -> (result, data)``: calls the library only. ``result`` holds the
  run's numbers (it becomes ``panel.result``); ``data`` holds arrays for the figure.
  Call ``progress(step, total)`` in long loops: it raises ``StopRequested`` after Stop.
- ``draw(fig, result, data)``: draws on a matplotlib ``Figure``.
- ``code(values) -> str``: Python source that, run on its own, recomputes the numbers named in
  ``reproducible`` into variables of the same names.

The constructor must stay cheap (no training): the gallery builds every panel at once.
"""
import html
import io
import threading
import traceback
from typing import Any, Dict, Optional, Sequence, Tuple

import ipywidgets as W

from aijack_lab.utils.progress import StopRequested

from .params import Param


def figure_to_png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return "[" + ", ".join(format_value(x) for x in v[:8]) + ", …]"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return str(v)


class Panel:
    """Base of every panel. See the module docstring for what a subclass provides."""

    title: str = ""
    description: str = ""
    reference: str = ""
    params: Sequence[Param] = ()
    reproducible: Sequence[str] = ()
    figsize: Tuple[float, float] = (9.0, 3.6)

    def __init__(self, **values):
        self.result: Dict[str, Any] = {}
        self.data: Dict[str, Any] = {}
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._param_by_name = {p.name: p for p in self.params}
        self.controls: Dict[str, W.Widget] = {p.name: p.make_widget() for p in self.params}
        self._build_ui()
        self.set(**values)
        self._refresh_code()
        for ctrl in self.controls.values():
            ctrl.observe(lambda _change: self._refresh_code(), names="value")

    # -- values ----------------------------------------------------------------------------
    @property
    def values(self) -> Dict[str, Any]:
        return {name: ctrl.value for name, ctrl in self.controls.items()}

    def set(self, **values) -> "Panel":
        """Set controls by name (as a user moving sliders would); unknown names are an error."""
        for name, value in values.items():
            if name not in self._param_by_name:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; it has {sorted(self._param_by_name)}")
            self.controls[name].value = self._param_by_name[name].validate(value)
        return self

    # -- what subclasses implement -----------------------------------------------------------
    def compute(self, values: Dict[str, Any], progress) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        raise NotImplementedError

    def draw(self, fig, result: Dict[str, Any], data: Dict[str, Any]) -> None:
        raise NotImplementedError

    def code(self, values: Dict[str, Any]) -> str:
        raise NotImplementedError

    # -- running -------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        """Run with the current controls, in this thread; update the figure, numbers and code."""
        self._stop.clear()
        self.error = None
        values = self.values
        self._set_running(True)
        self.status.value = "running…"
        self.progress_bar.value = 0.0
        try:
            result, data = self.compute(values, self._progress)
            self.result, self.data = dict(result), dict(data)
            self._show_result()
            self.progress_bar.value = 1.0
            self.status.value = "done"
        except StopRequested:
            self.status.value = "stopped"
            raise
        except Exception as exc:
            self.error = exc
            self.status.value = f"error: {type(exc).__name__}: {exc}"
            self.result_html.value = "<pre style='color:#b00'>" + html.escape(traceback.format_exc(limit=4)) + "</pre>"
            raise
        finally:
            self._set_running(False)
        return self.result

    def run_async(self) -> threading.Thread:
        """Run in a background thread so that Stop stays clickable (what the Run button does)."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread

        def target():
            try:
                self.run()
            except Exception:  # shown in the panel by run()
                pass

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def stop(self) -> None:
        self._stop.set()

    def _progress(self, step: int, total: int) -> None:
        if self._stop.is_set():
            raise StopRequested(f"stopped at step {step} of {total}")
        if total:
            self.progress_bar.value = min(1.0, step / total)

    # -- display -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        ref = f"<br><i>Reference: {html.escape(self.reference)}</i>" if self.reference else ""
        self.header = W.HTML(
            f"<h3 class='aijack-panel-title' style='margin:4px 0'>{html.escape(self.title)}</h3>"
            f"<div style='max-width:900px'>{self.description}{ref}</div>"
        )
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.run_button.add_class("aijack-run")
        self.stop_button.add_class("aijack-stop")
        self.run_button.on_click(lambda _b: self.run_async())
        self.stop_button.on_click(lambda _b: self.stop())
        self.progress_bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="260px"))
        self.status = W.Label("ready")
        self.image = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.image.add_class("aijack-figure")
        self.result_html = W.HTML("")
        self.result_html.add_class("aijack-result")
        self.code_html = W.HTML("")
        self.code_html.add_class("aijack-code")
        result_box = W.VBox([self.image, self.result_html])
        self.tabs = W.Tab(children=[result_box, self.code_html])
        self.tabs.set_title(0, "Result")
        self.tabs.set_title(1, "Code")
        controls = W.VBox(list(self.controls.values()))
        buttons = W.HBox([self.run_button, self.stop_button, self.progress_bar, self.status])
        self.widget = W.VBox([self.header, controls, buttons, self.tabs],
                             layout=W.Layout(border="1px solid #ddd", padding="8px", margin="4px 0"))
        self.widget.add_class("aijack-panel")

    def _set_running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running

    def _refresh_code(self) -> None:
        try:
            text = self.code(self.values)
        except NotImplementedError:
            text = ""
        self.code_html.value = "<pre style='font-size:12px'>" + html.escape(text) + "</pre>"

    @property
    def code_text(self) -> str:
        return self.code(self.values)

    def _show_result(self) -> None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=self.figsize)
        self.draw(fig, self.result, self.data)
        self.image.value = figure_to_png(fig)
        rows = "".join(
            f"<tr><td style='padding-right:12px'>{html.escape(k)}</td><td><b>{html.escape(format_value(v))}</b></td></tr>"
            for k, v in self.result.items()
        )
        self.result_html.value = f"<table>{rows}</table>"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
