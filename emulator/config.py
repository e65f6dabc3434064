from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ACCESS_KEY = "ZW11bGF0b3Itc2VjcmV0LWtleS0wMTIzNDU2Nzg5YWI="  # base64("emulator-secret-key-0123456789ab")
DEFAULT_RESOURCE_ID = "00000000-0000-0000-0000-00000000ac5e"
DEFAULT_ISSUER = "https://acscallautomation.communication.azure.com"
DEFAULT_SCRIPT_DIR = Path(__file__).resolve().parent / "scripts"
ENV_PREFIX = "ACS_EMULATOR_"


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8089
    access_key: str = DEFAULT_ACCESS_KEY
    resource_id: str = DEFAULT_RESOURCE_ID
    issuer: str = DEFAULT_ISSUER
    script_dir: Path = field(default=DEFAULT_SCRIPT_DIR)
    default_script: str = "support_call"
    private_key_path: Path | None = None
    # Seconds between create_call and CallConnected (a phone rings before it is picked up).
    connect_delay: float = 0.5

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.base_url}/;accesskey={self.access_key}"


def env_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """ACS_EMULATOR_* variables, keyed by the lower-case option name (ACS_EMULATOR_ACCESS_KEY -> access_key)."""
    environ = os.environ if environ is None else environ
    return {name[len(ENV_PREFIX) :].lower(): value for name, value in environ.items() if name.startswith(ENV_PREFIX)}
