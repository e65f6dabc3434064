"""The Azure Communication Call Automation SDK's private parts.

The SDK parses raw ids (`4:+15551234567`, `8:acs:…`) into identifiers only in its private `_shared`
module: its public identifier models must be built knowing the kind in advance. And its generated
serializer warns on every answer about its own TranscriptionOptions bug (acs-protocol.md 4.3), under a
logger named after a private module (config/settings.py quiets it).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from compat import incompatible

SHARED_MODELS = "azure.communication.callautomation._shared.models"
SERIALIZATION_LOGGER = "azure.communication.callautomation._generated._utils.serialization"


def identifier_from_raw_id(raw_id: str) -> Any:
    """The SDK's CommunicationIdentifier for a raw id."""
    return importlib.import_module(SHARED_MODELS).identifier_from_raw_id(raw_id)


def check() -> None:
    try:
        models = importlib.import_module(SHARED_MODELS)
        serialization = importlib.import_module(SERIALIZATION_LOGGER)
    except ImportError as error:
        raise incompatible("azure-communication-callautomation", str(error)) from error
    if not callable(getattr(models, "identifier_from_raw_id", None)):
        raise incompatible("azure-communication-callautomation", f"{SHARED_MODELS} has no identifier_from_raw_id")
    logger = getattr(serialization, "_LOGGER", None)
    if not isinstance(logger, logging.Logger) or logger.name != SERIALIZATION_LOGGER:
        raise incompatible("azure-communication-callautomation", f"no logger named {SERIALIZATION_LOGGER}")
