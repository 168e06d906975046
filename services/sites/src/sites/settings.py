from __future__ import annotations

from dtm_shared.settings import ServiceSettings


class SitesSettings(ServiceSettings):
    service_name: str = "sites"
