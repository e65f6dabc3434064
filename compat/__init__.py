"""Every place Callscribe reaches into a library's internals, one module per library.

Each reach is here for a measured reason (docs/performance.md) or because the library offers no public
way. Each module exposes the few names the app uses and a `check()` that verifies, at start-up, that
every internal it relies on is still there with the shape relied on; `check_all()` runs them all (from
`compat.apps.CompatConfig.ready`, so daphne, manage.py and the tests all run it). A failed check names
the library and its installed version: pin the version that passed in requirements.txt, or update the
module and its test (tests/test_compat.py).
"""

from __future__ import annotations

import hashlib
import inspect
from importlib import metadata
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class IncompatibleLibrary(ImproperlyConfigured):
    """An internal Callscribe relies on is missing or has changed."""


def incompatible(distribution: str, problem: str) -> IncompatibleLibrary:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = "(not installed)"
    return IncompatibleLibrary(
        f"{distribution} {version}: {problem}. Callscribe relies on this internal (see compat/); "
        "install the version pinned in requirements.txt, or update compat/ and tests/test_compat.py."
    )


def require_attributes(distribution: str, owner: Any, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        raise incompatible(distribution, f"{owner.__qualname__} has no {', '.join(missing)}")


def require_method(distribution: str, owner: Any, name: str, parameters: tuple[str, ...]) -> None:
    function = getattr(owner, name, None)
    if not callable(function):
        raise incompatible(distribution, f"{owner.__qualname__} has no method {name}")
    actual = tuple(inspect.signature(function).parameters)
    if actual != parameters:
        raise incompatible(
            distribution, f"{owner.__qualname__}.{name} takes ({', '.join(actual)}), not ({', '.join(parameters)})"
        )


def require_source(distribution: str, function: Any, fingerprint: str) -> None:
    """For code Callscribe copies or bypasses: the library's original must be the one the copy was made from."""
    if source_fingerprint(function) != fingerprint:
        raise incompatible(distribution, f"{function.__qualname__} is not the code Callscribe's copy follows")


def source_fingerprint(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def check_all() -> None:
    """Check every internal this configuration relies on. The lean frame reader and the pipelined
    publisher each have a switch back to the library's own path, which relies on nothing here."""
    from django.conf import settings

    from compat import asgiref, autobahn, azure_sdk, channels, channels_redis, daphne, django_asgi, django_db, twisted

    modules = [twisted, daphne, channels, asgiref, django_asgi, django_db, azure_sdk]
    if settings.WEBSOCKET_SIMPLE_FRAMES:
        modules.append(autobahn)
    if settings.CHANNEL_LAYERS["default"]["BACKEND"] == channels_redis.PUBSUB_BACKEND:
        modules.append(channels_redis)
    for module in modules:
        module.check()
