"""``@register(type, subcategory, algorithm, **preset)``: put a panel in the gallery.

One panel class may be registered for several algorithms with different presets (the
gradient-inversion family, the malicious-client managers).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

from .catalog import BY_KEY

_REGISTRY: Dict[Tuple[str, str, str], "Entry"] = {}


@dataclass
class Entry:
    type: str
    subcategory: str
    algorithm: str
    panel_cls: type
    preset: Dict[str, Any] = field(default_factory=dict)

    def create(self):
        return self.panel_cls(**self.preset)


def register(type_: str, subcategory: str, algorithm: str, **preset):
    key = (type_, subcategory, algorithm)
    if key not in BY_KEY:
        raise ValueError(f"{key} is not in the Table 1 catalog (widgets/catalog.py)")

    def decorator(cls):
        existing = _REGISTRY.get(key)
        if existing is not None and existing.panel_cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"{key} is already registered to {existing.panel_cls.__name__}")
        _REGISTRY[key] = Entry(type_, subcategory, algorithm, cls, dict(preset))
        return cls

    return decorator


def entries() -> Dict[Tuple[str, str, str], Entry]:
    from . import load_all_panels

    load_all_panels()
    return dict(_REGISTRY)


def get_entry(type_: str, subcategory: str, algorithm: str) -> Entry:
    all_entries = entries()
    key = (type_, subcategory, algorithm)
    if key not in all_entries:
        raise KeyError(f"no panel is registered for {key}")
    return all_entries[key]
