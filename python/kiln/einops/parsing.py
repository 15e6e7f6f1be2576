"""Parsing one side of an einops pattern, e.g. 'b (h h2) w ... 3'."""
import keyword

from . import EinopsError

ELLIPSIS = "..."


class AnonymousAxis:
    """A number other than 1 in a pattern: an axis of that length, distinct from every
    other axis (two '3's are two different axes)."""

    def __init__(self, value):
        self.value = int(value)
        if self.value <= 1:
            raise EinopsError(f"an anonymous axis needs a length above 1, got {self.value}")

    def __repr__(self):
        return f"{self.value}-axis"


def check_axis_name(name, allow_underscore=False):
    """Whether name can name an axis: an identifier that neither starts nor ends with
    '_' ('_' alone is allowed where it means 'skip this axis')."""
    return not axis_name_problem(name, allow_underscore)


def axis_name_problem(name, allow_underscore=False):
    if not str.isidentifier(name):
        return "it is not a valid Python identifier"
    if name[0] == "_" or name[-1] == "_":
        if name == "_" and allow_underscore:
            return ""
        return "axis names must not start or end with an underscore"
    if keyword.iskeyword(name):
        return "it is a Python keyword"
    return ""


def _tokens(expression):
    """'(', ')', '...' and words, in order."""
    i, n = 0, len(expression)
    while i < n:
        c = expression[i]
        if c.isspace():
            i += 1
        elif c in "()":
            yield c
            i += 1
        elif c == ".":
            if expression[i:i + 3] != ELLIPSIS:
                raise EinopsError(f"'.' may only appear as an ellipsis '...' in {expression!r}")
            yield ELLIPSIS
            i += 3
        elif c.isalnum() or c == "_":
            j = i
            while j < n and (expression[j].isalnum() or expression[j] == "_"):
                j += 1
            yield expression[i:j]
            i = j
        else:
            raise EinopsError(f"unexpected character {c!r} in {expression!r}")


class ParsedExpression:
    """One side of a pattern.

    composition: one entry per tensor dim, in order: ELLIPSIS (an ellipsis outside
    parentheses, standing for any number of dims) or a list of the elementary axes
    that dim is composed of (names, AnonymousAxis objects, or ELLIPSIS when the
    ellipsis sits inside the parentheses). '()' and '1' are dims of length 1 made of
    no axes.
    """

    def __init__(self, expression, allow_underscore=False, allow_duplicates=False):
        self.has_ellipsis = False
        self.has_ellipsis_parenthesized = None
        self.identifiers = set()
        self.has_non_unitary_anonymous_axes = False
        self.composition = []
        group = None   # the open parenthesis' axes, if any

        def add(axis):
            if axis in self.identifiers and not allow_duplicates and axis != "_":
                raise EinopsError(f"axis {axis!r} appears twice in {expression!r}")
            if axis == ELLIPSIS:
                if self.has_ellipsis:
                    raise EinopsError(f"more than one ellipsis in {expression!r}")
                self.has_ellipsis = True
                self.has_ellipsis_parenthesized = group is not None
                self.identifiers.add(ELLIPSIS)
                if group is None:
                    self.composition.append(ELLIPSIS)
                else:
                    group.append(ELLIPSIS)
                return
            if axis.isdecimal():
                if int(axis) == 1:        # a length-1 dim: no axis
                    if group is None:
                        self.composition.append([])
                    return
                anonymous = AnonymousAxis(axis)
                self.has_non_unitary_anonymous_axes = True
                self.identifiers.add(anonymous)
                (self.composition.append([anonymous]) if group is None
                 else group.append(anonymous))
                return
            problem = axis_name_problem(axis, allow_underscore)
            if problem:
                raise EinopsError(f"invalid axis name {axis!r} in {expression!r}: {problem}")
            self.identifiers.add(axis)
            if group is None:
                self.composition.append([axis])
            else:
                group.append(axis)

        for token in _tokens(expression):
            if token == "(":
                if group is not None:
                    raise EinopsError(f"nested parentheses in {expression!r}")
                group = []
            elif token == ")":
                if group is None:
                    raise EinopsError(f"unbalanced ')' in {expression!r}")
                self.composition.append(group)
                group = None
            else:
                add(token)
        if group is not None:
            raise EinopsError(f"unclosed '(' in {expression!r}")

    def has_composed_axes(self):
        """Whether some dim is not exactly one axis (a group, '()' or '1')."""
        return any(c != ELLIPSIS and len(c) != 1 for c in self.composition)

    def flat_axes_order(self):
        """The elementary axes, left to right."""
        order = []
        for c in self.composition:
            order.extend([ELLIPSIS] if c == ELLIPSIS else c)
        return order
