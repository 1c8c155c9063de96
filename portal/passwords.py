"""Password rules for patients' accounts, beyond Django's length and common-word checks.

They follow NIST SP 800-63B: no composition rules, but passwords made of the
patient's own details, the practice's name, or a repeated or sequential run
of characters are rejected, because they are the first ones guessed.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from patients.models import fold_name

# Runs that people type as a "random" password, and their reverses.
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    # Digits wrap around, as in 1234567890123.
    "0123456789" * 8,
    "qwertyuiopasdfghjklzxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "qwertzuiopasdfghjklyxcvbnm",
)
# Shorter name parts, such as "Ana", occur inside too many ordinary words.
MIN_WORD_LENGTH = 4


def _compact(text: str) -> str:
    """Return TEXT folded to lower case without accents, letters and digits only."""
    return re.sub(r"[\W_]+", "", fold_name(text))


def _context_words(user) -> set[str]:
    words = set()
    texts = [settings.PRACTICE_NAME, getattr(user, "username", "") or ""]
    email = getattr(user, "email", "") or ""
    texts.append(email.partition("@")[0])
    texts += [getattr(user, "first_name", ""), getattr(user, "last_name", "")]
    patient = getattr(user, "patient", None) if getattr(user, "pk", None) else None
    if patient is not None:
        texts += [patient.family_name, patient.given_names, patient.email]
    for text in texts:
        # The whole text in one word too, e.g. "riversidefamilypractice".
        whole = _compact(text or "")
        if len(whole) >= MIN_WORD_LENGTH:
            words.add(whole)
        for part in re.split(r"[\W_]+", fold_name(text or "")):
            if len(part) >= MIN_WORD_LENGTH:
                words.add(part)
    return words


class ContextPasswordValidator:
    """Reject passwords that contain the patient's or the practice's name."""

    def validate(self, password, user=None):
        compact = _compact(password)
        for word in _context_words(user):
            if word in compact:
                raise ValidationError(
                    "This password contains your name, your username or the "
                    "practice's name, which are the first things someone would "
                    "guess. Choose words that have nothing to do with you.",
                    code="password_has_context",
                )

    def get_help_text(self):
        return "It must not contain your name, your username or the practice's name."


class RepetitionPasswordValidator:
    """Reject passwords that repeat a short run or follow a keyboard or alphabet run."""

    def validate(self, password, user=None):
        compact = _compact(password)
        if len(set(compact)) < 4 or _is_repeated(compact) or _is_sequence(compact):
            raise ValidationError(
                "This password repeats itself or follows the keyboard or the "
                "alphabet, so it is easy to guess. Try a few unrelated words.",
                code="password_repetitive",
            )

    def get_help_text(self):
        return "It must not be a repeated or sequential run of characters."


def _is_repeated(text: str) -> bool:
    """Tell whether TEXT is one shorter run written several times over."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return True
    return False


def _is_sequence(text: str) -> bool:
    """Tell whether TEXT walks along a keyboard row or the alphabet, either way."""
    return any(text in run or text in run[::-1] for run in SEQUENCES)
