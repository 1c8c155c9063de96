"""Activation codes for printed letters: making them, reading them back, hashing them.

A code is CODE_LENGTH symbols of ALPHABET, printed in groups of four
(XXXX-XXXX-XXXX). The alphabet leaves out the look-alikes 0, O, 1, I and L,
and what a patient types is read without regard to case, spaces or dashes.

Strength: 31 symbols ** 12 = 7.9e17 codes, about 2**59.4. /activate/ and the
code step of an emailed link count every try per client address
(PATIENT_ATTEMPT_LIMIT per PATIENT_ATTEMPT_WINDOW_SECONDS: 20 per 15 minutes,
1,920 a day, by default). With 100,000 letters valid at once, 1,000 addresses
guessing for a whole year make 7.0e8 guesses and hit any letter with a
probability of 7.0e8 * 1e5 / 7.9e17 = 9e-5. A hit still needs the patient's
date of birth, and INVITATION_MAX_DOB_ATTEMPTS wrong ones lock the code.

Only a keyed hash (HMAC-SHA256 with SECRET_KEY) of a code is stored. A plain
SHA-256 of a 59-bit code could be searched offline from a copy of the
database: at some 2e10 hashes a second, one GPU takes about 400 days and a
few hundred GPUs one day. Without SECRET_KEY a keyed hash cannot be searched
at all. Changing SECRET_KEY therefore makes every printed code stop working.
"""

import hashlib
import hmac
import secrets
import unicodedata

from django.conf import settings

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12
GROUP = 4
LOOK_ALIKES = frozenset("01OIL")
# Characters a patient may type between the groups: spaces, and the hyphen
# and the dashes a phone keyboard or a word processor puts in its place.
SEPARATORS = frozenset(" \t-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
EXAMPLE = "ABCD-EFGH-JKMN"


class InvalidCode(ValueError):
    """Raised when typed text cannot be an activation code; the message explains why."""


def new_code() -> str:
    """Return a new random code of CODE_LENGTH symbols, without separators."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """Return CODE in groups of four joined by hyphens, as printed on a letter."""
    return "-".join(code[start : start + GROUP] for start in range(0, len(code), GROUP))


def parse_code(typed: str) -> str:
    """Return the code in TYPED as CODE_LENGTH capitals, or raise InvalidCode.

    Case, spaces and dashes are ignored, and full-width forms read as the
    plain letters and digits.
    """
    folded = unicodedata.normalize("NFKC", typed or "").upper()
    code = "".join(char for char in folded if char not in SEPARATORS)
    if not code:
        raise InvalidCode("Enter the activation code printed on your letter.")
    # Characters no code has at all are named first, so that the message
    # for a pasted "<script>" does not point at its letter I.
    others = sorted(
        {char for char in code if char not in ALPHABET and char not in LOOK_ALIKES}
    )
    if others:
        raise InvalidCode(
            f"{_quote(others)} cannot be part of an activation code. A code has "
            f"only letters and digits, like {EXAMPLE}."
        )
    look_alikes = sorted({char for char in code if char in LOOK_ALIKES})
    if look_alikes:
        raise InvalidCode(
            f"You typed {_quote(look_alikes)}, but activation codes never contain "
            "the letters O, I or L or the digits 0 or 1. Check the code on your "
            "letter again."
        )
    if len(code) != CODE_LENGTH:
        raise InvalidCode(
            f"An activation code has {CODE_LENGTH} letters and digits, and you "
            f"typed {len(code)}. Check the code on your letter again."
        )
    return code


def _quote(chars: list[str]) -> str:
    """Quote each character, naming the ones that cannot be seen."""
    shown = []
    for char in chars:
        if unicodedata.category(char)[0] in "CZ":
            shown.append(f"an invisible character (U+{ord(char):04X})")
        else:
            shown.append(f"“{char}”")
    return ", ".join(shown)


def hash_code(code: str) -> str:
    """Return the keyed hash stored for CODE, a result of parse_code() or new_code()."""
    return hmac.new(
        settings.SECRET_KEY.encode(),
        f"portal-activation-code:{code}".encode(),
        hashlib.sha256,
    ).hexdigest()
