"""Telegram adapter (python-telegram-bot): `TelegramAdapter` is the one entry point."""

from adapters.telegram.adapter import TelegramAdapter

__all__ = ["TelegramAdapter"]
