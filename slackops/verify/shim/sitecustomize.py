"""slackops verify's zero-code shim: point slack-sdk (and so Bolt) at the simulator, without touching the bot.

``slackops verify`` puts this directory first on the bot's ``PYTHONPATH``; Python imports ``sitecustomize`` at
start-up. When ``SLACKOPS_SIM_API_URL`` is set, every slack-sdk Web API client created without an explicit
``base_url`` uses it instead of ``https://slack.com/api/``. That covers ``WebClient``, ``AsyncWebClient`` and
the legacy client, and through them Bolt's ``App`` (``auth.test`` at start, ``client.chat_postMessage`` in
listeners) and every Socket Mode client (``apps.connections.open``, which hands back the simulator's WebSocket
URL). A ``base_url`` the bot passes explicitly is honoured.

Nothing is imported eagerly: an import hook patches the client modules when (and only if) the bot imports them.
This file must run under any Python with any packages, so it imports nothing from slackops.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys

ENV = "SLACKOPS_SIM_API_URL"
SLACK_DEFAULT = "https://slack.com/api/"

#: module -> client classes whose constructor takes ``base_url`` (token, base_url, ... in that order)
TARGETS = {
    "slack_sdk.web.base_client": ("BaseClient",),
    "slack_sdk.web.async_base_client": ("AsyncBaseClient",),
    "slack_sdk.web.legacy_base_client": ("LegacyBaseClient",),
}


def _patch_class(cls: type, url: str) -> None:
    if getattr(cls, "_slackops_patched", False):
        return
    original = cls.__init__
    default = getattr(cls, "BASE_URL", SLACK_DEFAULT)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        # base_url's default was bound when slack-sdk defined __init__, so changing BASE_URL alone is not
        # enough: fill the argument in, unless the bot chose a URL of its own.
        if len(args) >= 2:
            if args[1] in (None, default, SLACK_DEFAULT):
                args = (args[0], url, *args[2:])
        elif kwargs.get("base_url") in (None, default, SLACK_DEFAULT):
            kwargs["base_url"] = url
        original(self, *args, **kwargs)

    cls.__init__ = __init__
    cls.BASE_URL = url
    cls._slackops_patched = True


def _patch_module(module, url: str) -> None:
    for name in TARGETS.get(module.__name__, ()):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            _patch_class(cls, url)


class _Finder:
    """A meta-path finder that lets the normal machinery load a target module, then patches it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader, url = spec.loader, self.url
        original = loader.exec_module

        def exec_module(module):
            original(module)
            _patch_module(module, url)

        loader.exec_module = exec_module
        return spec


def install(url: str) -> None:
    """Patch modules already imported and hook the ones imported later."""
    for name in TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            _patch_module(module, url)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(url))


def _chain_next_sitecustomize() -> None:
    """Run the sitecustomize this one shadows (a venv's or the distribution's), if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None and spec.origin != os.path.abspath(__file__):
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


if os.environ.get(ENV):
    install(os.environ[ENV])
try:
    _chain_next_sitecustomize()
except Exception:  # pragma: no cover - someone else's sitecustomize failing must not stop the bot
    pass
