"""The text a code goes out in: in the user's language, and fit for the phone to read it by itself.

Templates per language (``[messages]``, BCP 47 tags) next to ``sender.template``, the default
language's. A message's language is the step-1 field ``lang`` when a template has it (the tag, then
its base language: ``pt-BR``, then ``pt``), else one of the official languages of the phone's
country that a template has (CLDR's, through Babel), else the default. Every template is checked
at start-up (only known placeholders) and its length in SMS segments is logged.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .schema import setting
from .schema import template as template_problem

logger = logging.getLogger("app.messages")

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def _tag(tag: str) -> str:
    """A BCP 47 tag as compared here: ``pt_BR``, ``PT-br`` -> ``pt-br``."""
    return tag.strip().replace("_", "-").lower()


def tag_problem(tag: str) -> str | None:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return f"{tag!r} is not a language tag (BCP 47, e.g. de, pt-BR)"
    return None


def _templates(value: dict) -> str | None:
    for tag, text in value.items():
        problem = tag_problem(str(tag)) or (template_problem(text) if isinstance(text, str) else "must be text")
        if problem:
            return f"{tag}: {problem}"
    return None


def _domain(value: str) -> str | None:
    return None if not value or _DOMAIN.fullmatch(value) else f"{value!r} is not a domain name (e.g. chat.example)"


@dataclasses.dataclass(frozen=True)
class MessageSettings:
    """Messages in your users' languages (``[messages]``), and codes the phone fills in by itself."""

    templates: dict[str, Any] = setting(
        {},
        'Language tag -> the login code\'s text in it (e.g. {"de" = "{code} ist '
        'Ihr {app_name}-Code. Er gilt {minutes} Minuten."}); the same fields as '
        "sender.template, which is the default language's.",
        check=_templates,
    )
    delete_templates: dict[str, Any] = setting(
        {},
        "The same for the code that deletes an account (sender.delete_template is the default language's).",
        check=_templates,
    )
    default_language: str = setting(
        "en", "The language of sender.template and sender.delete_template.", check=tag_problem
    )
    web_otp_domain: str = setting(
        "",
        "Your web app's domain (e.g. chat.example): every message then ends with "
        "'@chat.example #123456', from which browsers (WebOTP) and iOS fill the code in.",
        check=_domain,
    )


class Texts:
    """Chooses a message's template: ``choose(purpose, lang, region)``."""

    def __init__(self, settings: MessageSettings, login_default: str, delete_default: str):
        self.settings = settings
        default = _tag(settings.default_language)
        self._login = {default: login_default, **{_tag(t): text for t, text in settings.templates.items()}}
        self._delete = {default: delete_default, **{_tag(t): text for t, text in settings.delete_templates.items()}}
        self.default = default
        # Babel's data only when there are languages to choose from
        self._regions: dict[str, str] = {} if len(self._login) == 1 else _languages_of_regions(self._login)
        self.language_of = functools.lru_cache(maxsize=1024)(self._language_of)

    @property
    def languages(self) -> bool:
        """Whether there is more than one language to choose from."""
        return len(self._login) > 1 or len(self._delete) > 1

    def _language_of(self, lang: str, region: str) -> str:
        """The tag of the language a message goes out in."""
        tag = _tag(lang)
        while tag:
            if tag in self._login:
                return tag
            tag = tag.rpartition("-")[0]
        return self._regions.get(region.upper(), self.default)

    def choose(self, purpose: str, lang: str = "", region: str = "") -> tuple[str, str]:
        """(language tag, template) for a code meant for ``purpose`` (``login`` or a deletion)."""
        language = self.language_of(lang[:64], region)
        table = self._login if purpose == "login" else self._delete
        return language, table.get(language, table[self.default])

    def report(self, sample: Mapping[str, Any]) -> list[str]:
        """One line per template: its language, length and SMS segments, rendered as a message is
        (``sample``: the fields, and the retriever hash)."""
        from .senders.base import render

        lines = []
        for purpose, table in (("login", self._login), ("deleteaccount", self._delete)):
            for tag, text in sorted(table.items()):
                rendered = render(text, **sample, web_otp_domain=self.settings.web_otp_domain)
                count, encoding = segments(rendered)
                lines.append(f"{purpose} {tag}: {len(rendered)} characters, {encoding}, {count} SMS")
        return lines


def _languages_of_regions(templates: Iterable[str]) -> dict[str, str]:
    """Region (ISO 3166) -> the configured language tag its people read: the first of the region's
    official languages (CLDR) that has a template - as ``pt-br`` for Brazil, else ``pt``."""
    import phonenumbers
    from babel.languages import get_official_languages

    have = set(templates)
    chosen = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        for language in get_official_languages(region, de_facto=True):
            for tag in (f"{_tag(language)}-{region.lower()}", _tag(language)):
                if tag in have:
                    chosen[region] = tag
                    break
            if region in chosen:
                break
    return chosen


# GSM 03.38: what one 7-bit SMS can carry (the extension table's characters take two places)
_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def segments(text: str) -> tuple[int, str]:
    """(SMS segments, encoding) a text takes: GSM-7 (160 in one, 153 each when split) or UCS-2 (70, 67)."""
    if all(ch in _GSM or ch in _GSM_EXTENDED for ch in text):
        size = len(text) + sum(ch in _GSM_EXTENDED for ch in text)
        return (1 if size <= 160 else math.ceil(size / 153)), "GSM-7"
    units = len(text.encode("utf-16-le")) // 2
    return (1 if units <= 70 else math.ceil(units / 67)), "UCS-2"
