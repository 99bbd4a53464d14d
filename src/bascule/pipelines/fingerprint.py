"""Code fingerprints: what "the same step code" means for the step cache.

The fingerprint of a function is a sha256 of:

* its bytecode, constants and names (global and attribute names, local variable names),
  recursively for nested code objects (inner functions, lambdas, comprehensions);
* its default values;
* its closure's free variables, *by value* where they are hashable values: ``None``,
  booleans, numbers, strings, bytes, numpy scalars, and tuples and frozensets of those.
  A function in a closure is fingerprinted recursively, a step by its function, a module
  or class by its name. Any other object is included by its type only, so a change to it
  is not seen: mutable containers (a list, dict or set, which a step may well mutate
  while it runs), DataFrames, fitted models. Pass such values as inputs instead.

Functions the step *calls* through globals are not included; bump the step's
``version=`` when they change. Line numbers and file names are not included, so moving a
function does not invalidate its cached results. Sets are hashed in sorted order, so the
fingerprint is the same in every process (whatever ``PYTHONHASHSEED``) running the same
Python version; another Python version compiles other bytecode, hence other keys.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import Any

from bascule.pipelines.steps import Step

__all__ = ["code_fingerprint"]


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """A sha256 of a function's code, defaults and closure (the module docstring says what).

    Args:
        fn: A plain Python function.

    Returns:
        64 hex digits, the same in every process running the same Python version.
    """
    h = hashlib.sha256()
    _feed_value(h, fn, set())
    return h.hexdigest()


def _feed(h: Any, *parts: object) -> None:
    for part in parts:
        text = part if isinstance(part, bytes) else repr(part).encode()
        h.update(len(text).to_bytes(8, "big"))
        h.update(text)


def _feed_code(h: Any, code: types.CodeType, seen: set[int]) -> None:
    _feed(h, "code", code.co_code, code.co_names, code.co_varnames, code.co_freevars)
    _feed(h, code.co_cellvars, code.co_argcount, code.co_kwonlyargcount, code.co_flags)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const, seen)
        else:
            _feed_value(h, const, seen)


def _feed_value(h: Any, value: object, seen: set[int]) -> None:
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        _feed(h, type(value).__name__, value)
    elif type(value) is tuple:
        _feed(h, "tuple", len(value))
        for v in value:
            _feed_value(h, v, seen)
    elif type(value) is frozenset:
        # Iteration order of sets of strings changes between processes: sort fingerprints.
        parts = sorted(_sub_fingerprint(v, seen) for v in value)
        _feed(h, "frozenset", parts)
    elif isinstance(value, types.FunctionType):
        if id(value) in seen:  # recursion through a closure
            _feed(h, "function-again", value.__qualname__)
            return
        seen.add(id(value))
        _feed(h, "function")
        _feed_code(h, value.__code__, seen)
        _feed_value(h, value.__defaults__, seen)
        for name, default in sorted((value.__kwdefaults__ or {}).items()):
            _feed(h, "kwdefault", name)
            _feed_value(h, default, seen)
        for name, cell in zip(value.__code__.co_freevars, value.__closure__ or (), strict=True):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell: the variable is not bound yet
                content = None
            _feed(h, "free", name)
            _feed_value(h, content, seen)
    elif isinstance(value, Step):
        _feed_value(h, value.fn, seen)
    elif type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        _feed(h, "numpy", type(value).__name__, getattr(value, "item", lambda: None)())
    elif isinstance(value, types.ModuleType):
        _feed(h, "module", value.__name__)
    elif isinstance(value, type):
        _feed(h, "type", value.__module__, value.__qualname__)
    else:
        _feed(h, "object", type(value).__module__, type(value).__qualname__)


def _sub_fingerprint(value: object, seen: set[int]) -> str:
    h = hashlib.sha256()
    _feed_value(h, value, seen)
    return h.hexdigest()
