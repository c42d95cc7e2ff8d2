"""Declarative panel parameters: each becomes one control with the library's default."""
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import ipywidgets as W

_STYLE = {"description_width": "170px"}
_LAYOUT = W.Layout(width="430px")


@dataclass
class Param:
    name: str
    default: Any
    label: Optional[str] = None
    help: str = ""

    def make_widget(self) -> W.Widget:  # pragma: no cover - overridden
        raise NotImplementedError

    def validate(self, value):
        return value

    @property
    def text(self) -> str:
        return self.label or self.name.replace("_", " ")


@dataclass
class IntParam(Param):
    min: int = 0
    max: int = 100
    step: int = 1

    def make_widget(self):
        return W.IntSlider(value=self.default, min=self.min, max=self.max, step=self.step,
                           description=self.text, style=_STYLE, layout=_LAYOUT, tooltip=self.help)

    def validate(self, value):
        if isinstance(value, bool) or int(value) != value:
            raise TypeError(f"{self.name} must be an int, got {value!r}")
        if not self.min <= value <= self.max:
            raise ValueError(f"{self.name} must be in [{self.min}, {self.max}], got {value}")
        return int(value)


@dataclass
class FloatParam(Param):
    min: float = 0.0
    max: float = 1.0
    step: float = 0.01
    log: bool = False  # a log-scale slider: min/max are then exponents of 10

    def make_widget(self):
        if self.log:
            return W.FloatLogSlider(value=self.default, base=10, min=self.min, max=self.max, step=self.step,
                                    description=self.text, style=_STYLE, layout=_LAYOUT, tooltip=self.help)
        return W.FloatSlider(value=self.default, min=self.min, max=self.max, step=self.step,
                             description=self.text, style=_STYLE, layout=_LAYOUT, tooltip=self.help,
                             readout_format=".3g")

    def validate(self, value):
        value = float(value)
        lo, hi = (10 ** self.min, 10 ** self.max) if self.log else (self.min, self.max)
        if not lo - 1e-12 <= value <= hi + 1e-12:
            raise ValueError(f"{self.name} must be in [{lo:g}, {hi:g}], got {value}")
        return value


@dataclass
class ChoiceParam(Param):
    options: Sequence[Any] = field(default_factory=tuple)

    def make_widget(self):
        return W.Dropdown(value=self.default, options=list(self.options), description=self.text,
                          style=_STYLE, layout=_LAYOUT, tooltip=self.help)

    def validate(self, value):
        allowed = [o[1] if isinstance(o, tuple) else o for o in self.options]
        if value not in allowed:
            raise ValueError(f"{self.name} must be one of {allowed}, got {value!r}")
        return value


@dataclass
class BoolParam(Param):
    def make_widget(self):
        return W.Checkbox(value=bool(self.default), description=self.text, style=_STYLE, indent=False)

    def validate(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"{self.name} must be True or False, got {value!r}")
        return value
