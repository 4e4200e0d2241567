"""Replies' buttons as Telegram inline keyboards (callback data: `bot.replies.Button.data`)."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.replies import Button, StylePicker


def keyboard(buttons: Sequence[Button], *, per_row: int = 2) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(_rows(buttons, per_row))


def picker_keyboard(picker: StylePicker) -> InlineKeyboardMarkup:
    """Two styles a row, then one row of variant counts."""
    rows = _rows(picker.style_buttons, 2)
    rows.append([_button(b) for b in picker.variant_buttons])
    return InlineKeyboardMarkup(rows)


def _rows(buttons: Sequence[Button], per_row: int) -> list[list[InlineKeyboardButton]]:
    return [[_button(b) for b in buttons[i : i + per_row]] for i in range(0, len(buttons), per_row)]


def _button(button: Button) -> InlineKeyboardButton:
    return InlineKeyboardButton(button.label, callback_data=button.data)
