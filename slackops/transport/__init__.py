"""Client-side network I/O for Socket Mode: ``apps.connections.open`` and the managed sockets.

The only package that opens client sockets. Protocol decisions live in :mod:`slackops.protocol`; this package
moves bytes, reads clocks and keeps ``N`` sockets alive (:class:`ConnectionManager`).
"""

from slackops.transport.connection import SocketConnection
from slackops.transport.manager import ConnectionManager, ManagerConfig, ManagerStats
from slackops.transport.webapi import OpenedURL, OpenFailed, RateLimited, open_socket_url

__all__ = [
    "ConnectionManager",
    "ManagerConfig",
    "ManagerStats",
    "OpenFailed",
    "OpenedURL",
    "RateLimited",
    "SocketConnection",
    "open_socket_url",
]
