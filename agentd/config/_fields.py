"""Field declarations for config dataclasses: bounds, choices and docs in one place.

`setting(default, min=..., max=..., choices=..., doc=...)` wraps `dataclasses.field`
so the loader can validate ranges and name what is allowed in its error message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


def setting(
    default: Any = dataclasses.MISSING,
    *,
    min: float | None = None,  # noqa: A002 - reads naturally at the call site
    max: float | None = None,  # noqa: A002
    choices: Sequence[Any] | None = None,
    required: bool = False,
    secret: bool = False,
    doc: str = "",
    factory: Any = dataclasses.MISSING,
) -> Any:
    """Declare one config key with its validation rules."""
    metadata = {
        "min": min,
        "max": max,
        "choices": tuple(choices) if choices is not None else None,
        "required": required,
        "secret": secret,
        "doc": doc,
    }
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if required:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type) -> Any:
    """A nested config section whose every key has a default."""
    return dataclasses.field(default_factory=cls)
