"""Settings shared by every package: one object, one state folder (``CRM_HOME``)."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
