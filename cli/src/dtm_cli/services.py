"""Where each service's entry points are; imported lazily by the CLI (the CLI is the only place
that knows all three services)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PORTS = {"registration": 8001, "sites": 8002, "reporting": 8003}
RELAYS = ("registration", "sites")
CONSUMERS = ("registration", "reporting")


@dataclass(frozen=True)
class ServiceEntry:
    name: str

    @property
    def port(self) -> int:
        return PORTS[self.name]

    @property
    def app_factory(self) -> str:
        return f"{self.name}.main:create_app"

    def settings(self, **overrides: Any) -> Any:
        module = importlib.import_module(f"{self.name}.settings")
        cls = getattr(module, f"{self.name.capitalize()}Settings")
        return cls(**overrides)

    @property
    def migrations_dir(self) -> Path:
        package = importlib.import_module(self.name)
        assert package.__file__ is not None
        return Path(package.__file__).parent / "migrations"

    def workers(self) -> Any:
        return importlib.import_module(f"{self.name}.workers")


def entry(name: str) -> ServiceEntry:
    if name not in PORTS:
        raise KeyError(f"unknown service {name!r}; one of {', '.join(PORTS)}")
    return ServiceEntry(name)
