"""The grammar of ``-k`` and ``-m`` (pytest's), for :mod:`seqrun.select` and :mod:`seqrun.marks`.

Imported only when an expression is given: a listing without ``-k`` or ``-m``
never compiles the tokenizer. What an identifier matches is up to the caller
(``evaluate(matcher)``); the id patterns here tell a task id from a word.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from seqrun.config import UsageError

Matcher = Callable[[str], bool]

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<ident>(?:\w|[:+\-.\[\]\\/~])+))")
_NUMERIC_ID = re.compile(r"^\d+[a-z]?(?:\.\d+[a-z]?)*$", re.IGNORECASE)
_LETTERED_ID = re.compile(r"^[A-Za-z]{1,4}-?\d+[a-z]?(?:\.\d+[a-z]?)*$")


class ExpressionError(UsageError):
    pass


@dataclass
class _Token:
    kind: str  # "(", ")", "and", "or", "not", "ident", "eof"
    value: str
    column: int  # 1-based, as pytest reports it


def _tokenize(text: str, option: str = "-k") -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionError(f"wrong expression passed to {option}: {text!r}: "
                                  f"at column {pos + 1}: unexpected character {text[pos]!r}")
        start = m.start("paren") if m.group("paren") else m.start("ident")
        value = m.group("paren") or m.group("ident")
        kind = value if value in ("(", ")", "and", "or", "not") else "ident"
        tokens.append(_Token(kind, value, start + 1))
        pos = m.end()
    tokens.append(_Token("eof", "end of input", len(text) + 1))
    return tokens


class Expression:
    """A compiled ``-k`` (or ``-m``) expression; ``evaluate(matcher)`` answers for one task."""

    def __init__(self, text: str, option: str = "-k") -> None:
        self.text = text
        self.option = option
        self._tokens = _tokenize(text, option)
        self._pos = 0
        if self._tokens[0].kind == "eof":
            self._code: Callable[[Matcher], bool] = lambda m: True
            return
        self._code = self._expr()
        self._expect("eof")

    def evaluate(self, matcher: Matcher) -> bool:
        return self._code(matcher)

    def identifiers(self) -> list[str]:
        """The words and ids of the expression (not its operators)."""
        return [t.value for t in self._tokens if t.kind == "ident"]

    # recursive descent, one method per grammar rule
    def _peek(self) -> _Token:
        return self._tokens[self._pos]

    def _accept(self, kind: str) -> _Token | None:
        tok = self._peek()
        if tok.kind == kind:
            self._pos += 1
            return tok
        return None

    def _expect(self, *kinds: str) -> _Token:
        tok = self._peek()
        if tok.kind not in kinds:
            wanted = " OR ".join({"eof": "end of input", "ident": "identifier",
                                  "(": "left parenthesis", ")": "right parenthesis"}.get(k, k)
                                 for k in kinds)
            raise ExpressionError(f"wrong expression passed to {self.option}: {self.text!r}: at column "
                                  f"{tok.column}: expected {wanted}; got {tok.value}")
        self._pos += 1
        return tok

    def _expr(self) -> Callable[[Matcher], bool]:
        parts = [self._and_expr()]
        while self._accept("or"):
            parts.append(self._and_expr())
        return parts[0] if len(parts) == 1 else (lambda m: any(p(m) for p in parts))

    def _and_expr(self) -> Callable[[Matcher], bool]:
        parts = [self._not_expr()]
        while self._accept("and"):
            parts.append(self._not_expr())
        return parts[0] if len(parts) == 1 else (lambda m: all(p(m) for p in parts))

    def _not_expr(self) -> Callable[[Matcher], bool]:
        if self._accept("not"):
            inner = self._not_expr()
            return lambda m: not inner(m)
        if self._accept("("):
            inner = self._expr()
            self._expect(")")
            return inner
        ident = self._expect("not", "(", "ident").value
        return lambda m: m(ident)
