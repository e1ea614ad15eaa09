"""Senders deliver codes; one is chosen by name with ``sender.name`` (see ``app.plugins``).

A sender is built once as ``Sender(options, common)``: ``options`` is its own section's settings
(None when it declares none) and ``common`` the ``[sender]`` section (timeout, message text).
"""

from __future__ import annotations

from .base import Message, Sender, SendError, render

__all__ = ["Message", "Sender", "SendError", "render"]
