"""A tiny, safe expression language for programs stored as constant strings.

Executables must stay loadable from files without ever evaluating Python source, yet
two runtime functions need a small program: the fused elementwise kernel (a chain of
ops) and the shape function (integer arithmetic over the shape heap). Both are
written in this language and parsed here by a hand-written tokenizer and
recursive-descent parser; the result is a tree of tuples that the runtime walks.

Grammar (whitespace ignored)::

    program   := statement (";" statement)*
    statement := target "=" expr
    target    := NAME (":" NAME)?                 # optional dtype annotation
    expr      := term (("+" | "-") term)*
    term      := unary (("*" | "//" | "/" | "%") unary)*
    unary     := "-" unary | atom
    atom      := NUMBER | STRING | NAME | NAME "(" args? ")" | "(" expr ")"
    args      := arg ("," arg)*
    arg       := NAME "=" expr | expr

Nodes: ``("num", value)``, ``("str", text)``, ``("ref", name)``,
``("call", name, args, kwargs)``, ``("bin", op, left, right)``, ``("neg", operand)``.
Statements are ``(target, dtype_or_None, node)``. Anything else is a ValueError
naming the position, so a corrupted file fails loudly instead of running.
"""

from __future__ import annotations

import re
from typing import Any

#: Longest program accepted (a guard against corrupted or hostile files).
MAX_LENGTH = 1 << 20
#: Deepest nesting accepted.
MAX_DEPTH = 64

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?|inf|nan)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<str>"[A-Za-z0-9_ .\-]*")
  | (?P<op>//|[-+*/%=(),;:])
""", re.VERBOSE)

Node = tuple
Statement = tuple[str, "str | None", Node]


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) for every token; ValueError on any other character."""
    if not isinstance(text, str):
        raise ValueError(f"exprlang: program must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"exprlang: program is {len(text)} characters, over the limit of "
                         f"{MAX_LENGTH}")
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"exprlang: unexpected character {text[pos]!r} at position {pos} "
                             f"in {text[:80]!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append((kind, m.group(), pos))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("end", "", len(self.text))

    def take(self, text: str | None = None, kind: str | None = None) -> str:
        k, t, pos = self.peek()
        if (text is not None and t != text) or (kind is not None and k != kind) or k == "end":
            want = text or kind
            raise ValueError(f"exprlang: expected {want!r} at position {pos}, got "
                             f"{t or 'end of program'!r} in {self.text[:80]!r}")
        self.i += 1
        return t

    def accept(self, text: str) -> bool:
        if self.peek()[1] == text and self.peek()[0] in ("op",):
            self.i += 1
            return True
        return False

    # -- grammar -----------------------------------------------------------------------------
    def program(self) -> list[Statement]:
        statements = [self.statement()]
        while self.accept(";"):
            if self.peek()[0] == "end":
                break
            statements.append(self.statement())
        if self.peek()[0] != "end":
            k, t, pos = self.peek()
            raise ValueError(f"exprlang: unexpected {t!r} at position {pos} in "
                             f"{self.text[:80]!r}")
        return statements

    def statement(self) -> Statement:
        target = self.take(kind="name")
        dtype = None
        if self.accept(":"):
            dtype = self.take(kind="name")
        self.take("=")
        return (target, dtype, self.expr())

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"exprlang: expression nests deeper than {MAX_DEPTH}")
        node = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()
            node = ("bin", op, node, self.term())
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek()[1] in ("*", "//", "/", "%") and self.peek()[0] == "op":
            op = self.take()
            node = ("bin", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValueError(f"exprlang: expression nests deeper than {MAX_DEPTH}")
            node = ("neg", self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        kind, text, _ = self.peek()
        if kind == "num":
            self.i += 1
            return ("num", _number(text))
        if kind == "str":
            self.i += 1
            return ("str", text[1:-1])
        if kind == "name":
            self.i += 1
            if self.accept("("):
                return self.call(text)
            return ("ref", text)
        self.take("(")
        node = self.expr()
        self.take(")")
        return node

    def call(self, name: str) -> Node:
        args: list[Node] = []
        kwargs: list[tuple[str, Node]] = []
        if not self.accept(")"):
            while True:
                if self.peek()[0] == "name" and self.peek(1)[1] == "=":
                    key = self.take()
                    self.take("=")
                    kwargs.append((key, self.expr()))
                else:
                    args.append(self.expr())
                if self.accept(")"):
                    break
                self.take(",")
        return ("call", name, tuple(args), tuple(kwargs))


def _number(text: str) -> int | float:
    if text in ("inf", "nan"):
        return float(text)
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


def parse_program(text: str) -> list[Statement]:
    """Parse ``name[:dtype] = expr; ...`` into statements (ValueError when malformed)."""
    return _Parser(text).program()


def format_number(value: Any) -> str:
    """A literal that parses back to exactly ``value`` (negatives via unary minus)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value) if value >= 0 else f"(-{-value})"
    v = float(value)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "(-inf)"
    text = repr(abs(v))
    return text if v >= 0 and not text.startswith("-") else f"(-{text})"
