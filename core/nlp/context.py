"""Sentence and section detection and a ConText-style assertion component for clinical notes (spaCy).

ConText (Harkema et al., J Biomed Inform 2009;42:839-851): trigger phrases before ("pre") or after ("post") a
concept mark it negated, hypothetical, historical or about a family member, within the same sentence up to a
termination term ("but", "however", ...). Written here rather than taken from medspaCy (its pins conflict with our
numpy) or negspacy (installs, but marks negation only, not hypothetical/historical/family).
"""

from __future__ import annotations

import re

from spacy.language import Language
from spacy.tokens import Doc, Span

__all__ = ["ASSERTIONS", "TRIGGERS", "apply_context", "clinical_sentences", "sections"]

ASSERTIONS = ("negated", "hypothetical", "historical", "family")

#: (assertion, direction, phrase). Direction "pre": applies to concepts after it; "post": to concepts before it.
TRIGGERS: tuple[tuple[str, str, str], ...] = (
    *(("negated", "pre", p) for p in (
        "no evidence of", "no signs of", "no sign of", "no", "not", "without", "denies", "denied", "negative for",
        "free of", "absence of", "absent", "neither", "nor", "never had", "not a", "no longer",
    )),
    *(("negated", "post", p) for p in ("was negative", "is negative", "were negative", "ruled out", "excluded",
                                       "not seen", "not identified", "was excluded", "is unlikely")),
    *(("hypothetical", "pre", p) for p in (
        "if", "should", "would", "could", "in case", "whether", "consider", "considered for", "to be considered",
        "candidate for", "rule out", "r/o", "to exclude", "possible", "pending", "awaiting", "might", "unless",
        "will be sent", "is being sent", "has been sent", "sent for",
    )),
    *(("hypothetical", "post", p) for p in ("is pending", "are pending", "pending", "to be considered",
                                            "was considered", "will be considered", "if declined", "not excluded",
                                            "cannot be excluded", "not ruled out", "to be excluded")),
    *(("historical", "pre", p) for p in ("history of", "h/o", "previously", "status post", "s/p", "remote",
                                         "past history of", "formerly", "treated for", "treated with")),
    *(("historical", "post", p) for p in ("years ago", "in the past", "treated with", "was treated")),
    *(("family", "pre", p) for p in ("mother", "father", "brother", "sister", "sibling", "family history",
                                     "aunt", "uncle", "grandmother", "grandfather", "son", "daughter")),
)  # fmt: skip
_TERMINATION = {"but", "however", "although", "though", "except", "apart", "aside", "which", "whereas", "yet"}
_HEADING = re.compile(r"^\s*([A-Z][A-Za-z /&()-]{2,60}?)\s*:?\s*$|^\s*([A-Z][A-Z /&()-]{2,40}):")
_FAMILY_SECTIONS = ("family history",)


@Language.component("clinical_sentences")
def clinical_sentences(doc: Doc) -> Doc:
    """Sentence starts after line breaks and after . ? ! (not inside numbers like 3.2)."""
    for i, token in enumerate(doc):
        if i == 0:
            token.is_sent_start = True
            continue
        prev = doc[i - 1]
        token.is_sent_start = "\n" in prev.text or prev.text in {".", "?", "!"}
    return doc


def sections(text: str) -> list[tuple[int, str]]:
    """(start offset, lower-case heading) of each section, from heading lines such as 'SOCIAL HISTORY' or
    'Impression:'."""
    out: list[tuple[int, str]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        match = _HEADING.match(line)
        if match and (line.strip().isupper() or line.strip().endswith(":") or match.group(2)):
            out.append((offset, (match.group(1) or match.group(2)).strip().lower()))
        offset += len(line)
    return out


def _find_triggers(sent: Span) -> list[tuple[str, str, int, int]]:
    """(assertion, direction, start token, end token) of each trigger in the sentence, longest match first."""
    words = [t.lower_ for t in sent]
    found: list[tuple[str, str, int, int]] = []
    taken: dict[str, set[int]] = {"pre": set(), "post": set()}
    for assertion, direction, phrase in sorted(TRIGGERS, key=lambda t: -len(t[2].split())):
        parts = phrase.split()
        for i in range(len(words) - len(parts) + 1):
            span = range(i, i + len(parts))
            if words[i : i + len(parts)] == parts and not taken[direction].intersection(span):
                found.append((assertion, direction, sent.start + i, sent.start + i + len(parts)))
                taken[direction].update(span)
    return found


def apply_context(doc: Doc, span: Span) -> dict[str, bool | str]:
    """The assertions (negated, hypothetical, historical, family: bool) and the section (str) of a concept span."""
    heads = sections(doc.text)
    current = [name for start, name in heads if start <= span.start_char]
    out: dict[str, bool | str] = dict.fromkeys(ASSERTIONS, False)
    out["section"] = current[-1] if current else ""
    if out["section"] in _FAMILY_SECTIONS:
        out["family"] = True
    sent = span.sent
    for assertion, direction, start, end in _find_triggers(sent):
        if start < span.end and end > span.start:
            continue  # the trigger is part of the concept ("never smoker", "non-smoker")
        if direction == "pre" and end <= span.start:
            between = doc[end : span.start]
        elif direction == "post" and start >= span.end:
            between = doc[span.end : start]
        else:
            continue
        if any(t.lower_ in _TERMINATION or t.text in {";", ":"} for t in between):
            continue
        if assertion == "negated" and len(between) > 6:
            continue  # negation scope: six tokens (NegEx window)
        out[assertion] = True
    return out
