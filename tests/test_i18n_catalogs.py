"""The shipped catalogs are complete, current and consistent with the code.

Messages are extracted again from the code (as `make i18n` does, with Babel) and compared
with the template and with every language's catalog: a message the code uses that a
catalog lacks, leaves untranslated or marks fuzzy fails; so does a catalog message no code
uses any more, a translation whose `{placeholders}` differ from the source, a plural rule
that is not the language's, and a compiled `.mo` that does not say what its `.po` says.
Every language found under bot/locales is checked, so a new one is held to the same bar.
"""

from __future__ import annotations

import gettext
import io
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from bot import i18n, platform_texts, texts
from bot.chat_commands import CHAT_COMMANDS
from bot.i18n.catalogs import DOMAIN
from bot.styles import StyleCatalog

ROOT = Path(__file__).parent.parent
LOCALES = ROOT / "bot" / "locales"
SOURCES = ("bot", "adapters", "provenance")
SHIPPED = ("ar", "de", "es", "id", "pt_BR", "ru")
Key = tuple[str | None, str]


def catalog_locales() -> list[str]:
    return sorted(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def extracted() -> dict[Key, str | tuple[str, ...]]:
    """What the code asks gettext for, by (context, msgid): the message (a tuple of
    singular and plural for counted ones)."""
    found: dict[Key, str | tuple[str, ...]] = {}
    for folder in SOURCES:
        for _, _, message, _, context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=DEFAULT_KEYWORDS
        ):
            msgid = message[0] if isinstance(message, tuple) else message
            found[(context, msgid)] = message
    return found


def messages(catalog: Catalog) -> Iterator[Message]:
    return (m for m in catalog if m.id)


def key(message: Message) -> Key:
    msgid = message.id[0] if isinstance(message.id, tuple) else message.id
    return (message.context, str(msgid))


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture(scope="module")
def code_messages() -> dict[Key, str | tuple[str, ...]]:
    return extracted()


def test_every_shipped_language_has_a_catalog() -> None:
    assert set(SHIPPED) <= set(catalog_locales())
    assert set(i18n.catalogs().locales) == {i18n.SOURCE_LOCALE, *catalog_locales()}


def test_the_template_is_what_the_code_uses(
    code_messages: dict[Key, str | tuple[str, ...]],
) -> None:
    template = {key(m): m.id for m in messages(read(LOCALES / f"{DOMAIN}.pot"))}
    assert set(code_messages) - set(template) == set(), "extracted but not in the template"
    assert set(template) - set(code_messages) == set(), "in the template, used by no code"
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in template.items()} == (
        code_messages
    )


@pytest.mark.parametrize("locale", catalog_locales())
def test_catalog_is_complete_current_and_not_fuzzy(
    locale: str, code_messages: dict[Key, str | tuple[str, ...]]
) -> None:
    catalog = read(LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po", locale)
    found = {key(m): m for m in messages(catalog)}
    assert set(code_messages) - set(found) == set(), f"{locale}: missing messages"
    assert set(found) - set(code_messages) == set(), f"{locale}: messages no code uses"
    assert not catalog.obsolete, f"{locale}: obsolete (#~) entries left in the catalog"
    assert not catalog.fuzzy, f"{locale}: the header is marked fuzzy"
    for k, message in found.items():
        assert not message.fuzzy, f"{locale}: fuzzy {k}"
        assert message.pluralizable == isinstance(code_messages[k], tuple), k
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(f.strip() for f in forms), f"{locale}: untranslated {k}"


@pytest.mark.parametrize("locale", catalog_locales())
def test_plural_rule_is_the_languages_own(locale: str) -> None:
    catalog = read(LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po", locale)
    assert catalog.plural_forms == get_plural(Locale.parse(locale)).plural_forms


def test_russian_has_three_plural_forms_and_arabic_six() -> None:
    assert read(LOCALES / "ru" / "LC_MESSAGES" / f"{DOMAIN}.po", "ru").num_plurals == 3
    assert read(LOCALES / "ar" / "LC_MESSAGES" / f"{DOMAIN}.po", "ar").num_plurals == 6


def _numbers_per_form(translations: gettext.GNUTranslations, nplurals: int) -> list[set[int]]:
    """Which counts (0-1000) each plural form serves, by the compiled Plural-Forms rule."""
    rule = translations.plural  # type: ignore[attr-defined]  # set from the .mo header
    served: list[set[int]] = [set() for _ in range(nplurals)]
    for n in range(1001):
        served[rule(n)].add(n)
    return served


@pytest.mark.parametrize("locale", catalog_locales())
def test_placeholders_match_the_source(locale: str) -> None:
    """Every translation names the same `{placeholders}` as its English source and
    formats without error; a plural form that serves one count only (Arabic's forms for
    0, 1 and 2) may leave the count out, as English does for 1."""
    catalog = read(LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po", locale)
    compiled = i18n.catalogs().translations[locale]
    assert isinstance(compiled, gettext.GNUTranslations)
    served = _numbers_per_form(compiled, catalog.num_plurals)
    for message in messages(catalog):
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        expected = set().union(*(fields(s) for s in sources))
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        for index, text in enumerate(forms):
            names = fields(text)
            assert names <= expected, f"{locale}: {sorted(names - expected)} in {text!r}"
            missing = expected - names
            single = message.pluralizable and len(served[index]) == 1
            assert not missing or (single and len(missing) == 1), (
                f"{locale}: {text!r} lacks {sorted(missing)}"
            )
            text.format(**dict.fromkeys(names, "x"))


@pytest.mark.parametrize("locale", catalog_locales())
def test_compiled_catalog_says_what_the_po_says(locale: str) -> None:
    po = read(LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po", locale)
    buffer = io.BytesIO()
    write_mo(buffer, po)
    fresh = gettext.GNUTranslations(io.BytesIO(buffer.getvalue()))
    shipped = i18n.catalogs().translations[locale]
    for message in messages(po):
        context = message.context
        if isinstance(message.id, tuple):
            one, many = message.id
            for n in range(120):
                said = [
                    t.npgettext(context, one, many, n) if context else t.ngettext(one, many, n)
                    for t in (shipped, fresh)
                ]
                assert said[0] == said[1], (locale, one, n)
        else:
            said = [
                t.pgettext(context, message.id) if context else t.gettext(message.id)
                for t in (shipped, fresh)
            ]
            assert said[0] == said[1], (locale, message.id)


@pytest.mark.parametrize("locale", catalog_locales())
def test_each_language_names_itself(locale: str) -> None:
    name = i18n.language_name(locale)
    assert name != "English"
    assert name != i18n.language_name(i18n.SOURCE_LOCALE)


@pytest.mark.parametrize("locale", catalog_locales())
def test_discord_option_names_are_valid_in_every_language(locale: str) -> None:
    with i18n.use(locale):
        for option in ("selfie", "style", "variants", "image"):
            name = platform_texts.option_name(option)
            assert name is not None
            assert 1 <= len(name) <= 32, (locale, name)
            assert name == name.lower(), (locale, name)
            assert all(c.isalnum() or c in "-_" for c in name), (locale, name)


@pytest.mark.parametrize("locale", catalog_locales())
def test_platform_limits_hold_in_every_language(locale: str) -> None:
    """What the platforms would cut or refuse: Discord's 100-character descriptions and
    80-character button labels, Telegram's 512/120-character bot descriptions and its
    200-character button alerts."""
    with i18n.use(locale):
        for entry in CHAT_COMMANDS:
            assert 0 < len(entry.summary) <= 100, (locale, entry.name)
        options = (
            platform_texts.option_selfie,
            platform_texts.option_style,
            platform_texts.option_variants,
        )
        assert all(len(say()) <= 100 for say in (*options, platform_texts.option_image))
        admin = (
            *platform_texts.admin_descriptions().values(),
            *platform_texts.admin_options().values(),
        )
        assert all(0 < len(text) <= 100 for text in admin), locale
        assert len(platform_texts.bot_description()) <= 512
        assert len(platform_texts.bot_short_description()) <= 120
        assert len(texts.not_your_button()) <= 200
        buttons = [
            texts.button_make_avatar, texts.button_new_avatar, texts.button_new_selfie,
            texts.button_another_photo, texts.button_cancel, texts.button_cancel_it,
            texts.button_more, texts.button_try_again, texts.button_another_style,
            texts.button_original, texts.button_forget_selfie, texts.language_automatic,
        ]  # fmt: skip
        assert all(len(say()) <= 80 for say in buttons)
        for style in StyleCatalog.load():
            assert len(style.label) <= 80  # a button and a Discord choice (100)


@pytest.mark.parametrize("locale", catalog_locales())
def test_every_shipped_style_speaks_every_language(locale: str) -> None:
    for style in StyleCatalog.load():
        words = style.translations.get(locale)
        assert words is not None, f"style {style.id!r} has no [style.translations.{locale}]"
        assert words.title.strip()
        assert words.description.strip()
        with i18n.use(locale):
            assert style.label == f"{style.emoji} {words.title}"
            assert style.blurb == words.description


def test_a_new_language_is_a_catalog_and_no_code(tmp_path: Path) -> None:
    """What docs/languages.md says to do, done in a scratch folder: a compiled catalog
    under <locale>/LC_MESSAGES is found, negotiated and spoken, styles fall back to
    English until translated."""
    template = read(LOCALES / f"{DOMAIN}.pot")
    french = Catalog(locale="fr")
    for message in messages(template):
        french.add(message.id, context=message.context)
    french.get("See the styles").string = "Voir les styles"  # type: ignore[union-attr]
    folder = tmp_path / "fr" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / f"{DOMAIN}.mo").open("wb") as f:
        write_mo(f, french)
    found = i18n.Catalogs.load(tmp_path)  # type: ignore[arg-type]  # a Path is Traversable
    assert found.locales == ("en", "fr")
    assert i18n.negotiate("fr-CA", found.locales) == "fr"
    assert found.get("fr").gettext("See the styles") == "Voir les styles"
    assert found.get("fr").gettext("Start over") == "Start over"  # untranslated: English
    sketch = StyleCatalog.load().get("sketch")
    assert sketch.label_in("fr") == sketch.label_in("en") == "✏️ Pencil sketch"


def test_right_to_left_languages() -> None:
    assert i18n.text_direction("ar") == "rtl"
    assert i18n.text_direction("he") == "rtl"
    assert {i18n.text_direction(loc) for loc in ("en", "es", "pt_BR", "de", "ru", "id")} == {"ltr"}
