"""Find *what* inside an object stops it from being pickled, and *where* it sits.

When a task argument fails to serialize, pickle's own error ("cannot pickle '_thread.lock'
object") names the offending type but not where it hides: in the third element of a list,
in an attribute of an attribute, in a variable a closure captured. This module walks into
the object the way cloudpickle does (containers, instance attributes and slots, a
function's closure cells, referenced globals and defaults) and pickles each part on its
own, descending only into the parts that fail, until it reaches the *leaves*: failing
objects with no failing parts of their own. Each leaf is reported with a Python-like path
from the root, e.g. ``args[1]['conn'].sock`` or ``f <closure var 'lock'>``.

It is pure: it needs cloudpickle only, never a running solray, so the core worker can call
it on the submit path to turn a pickling error into a message that names the culprit, and
users can call :func:`inspect_serializability` (``ray.util.inspect_serializability``) to
debug by hand.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from typing import Any

import cloudpickle

__all__ = [
    "FailureTuple",
    "describe_unserializable",
    "find_unserializable",
    "inspect_serializability",
]

# Stop walking after this many leaves: enough to explain the failure, and it bounds the
# work on huge containers full of unpicklable items.
_MAX_FAILURES = 16

# Class attributes that are bookkeeping, not state, when walking a class pickled by value.
_CLASS_BOOKKEEPING = frozenset(
    {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__slots__"}
)


class FailureTuple:
    """One object that fails to serialize, and where it was found.

    Attributes:
        obj: the unserializable object itself.
        name: its name within its parent (attribute, key, variable name), or the root name.
        parent: the object that holds it (None for the root).
        path: the full path from the root, e.g. ``args[1]['conn'].sock``.
        error: what pickling it raised, as text.
    """

    def __init__(self, obj: Any, name: str, parent: Any, path: str = "", error: str = ""):
        self.obj = obj
        self.name = name
        self.parent = parent
        self.path = path or name
        self.error = error

    def __repr__(self) -> str:
        return f"FailTuple({self.path} [obj={_short_repr(self.obj)}, parent={_short_repr(self.parent)}])"


def _short_repr(obj: Any, limit: int = 80) -> str:
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = f"<{_type_name(obj)} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(obj: Any) -> str:
    return type(obj).__qualname__


def _pickle_error(obj: Any) -> BaseException | None:
    """Return what pickling ``obj`` on its own raises, or None if it pickles."""
    try:
        cloudpickle.dumps(obj)
    except Exception as exc:  # pickling runs arbitrary __reduce__ code: anything may raise
        return exc
    return None


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


# ----------------------------------------------------------------------------- children


def _code_global_names(code: types.CodeType) -> list[str]:
    """Names a code object (and code nested in it) may look up as globals, in order."""
    names = dict.fromkeys(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(dict.fromkeys(_code_global_names(const)))
    return list(names)


def _function_children(fn: types.FunctionType) -> Iterator[tuple[str, str, Any]]:
    """What cloudpickle pickles along with a function it pickles by value."""
    code = fn.__code__
    for var, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # the variable is not bound yet
            continue
        yield f" <closure var '{var}'>", var, value
    fn_globals = fn.__globals__
    for gname in _code_global_names(code):
        if gname in fn_globals:
            yield f" <global '{gname}'>", gname, fn_globals[gname]
    if fn.__defaults__:
        positional = code.co_varnames[: code.co_argcount]
        first = len(positional) - len(fn.__defaults__)
        for i, value in enumerate(fn.__defaults__):
            arg = positional[first + i] if first + i >= 0 else str(i)
            yield f" <default '{arg}'>", arg, value
    for arg, value in (fn.__kwdefaults__ or {}).items():
        yield f" <default '{arg}'>", arg, value
    for attr, value in vars(fn).items():
        yield f".{attr}", attr, value


def _slot_names(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for slot in slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            if slot.startswith("__") and not slot.endswith("__"):
                slot = f"_{klass.__name__.lstrip('_')}{slot}"  # private names are mangled
            yield slot


def _attribute_children(obj: Any) -> Iterator[tuple[str, str, Any]]:
    """Instance state: ``__dict__`` entries and slot values."""
    try:
        attrs = vars(obj)
    except TypeError:
        attrs = {}
    for attr, value in list(attrs.items()):
        yield f".{attr}", str(attr), value
    for slot in _slot_names(type(obj)):
        try:
            value = getattr(obj, slot)
        except AttributeError:  # slot never assigned
            continue
        yield f".{slot}", slot, value


def _reduce_children(obj: Any) -> Iterator[tuple[str, str, Any]]:
    """Fallback for objects with custom pickling: the constructor args and state."""
    try:
        reduced = obj.__reduce_ex__(5)
    except Exception:  # the object refuses to pickle at all: it is a leaf
        return
    if not isinstance(reduced, tuple) or len(reduced) < 2:
        return
    for i, arg in enumerate(reduced[1] or ()):
        if arg is type(obj):
            continue
        yield f" <reduce arg {i}>", f"arg {i}", arg
    state = reduced[2] if len(reduced) > 2 else None
    if isinstance(state, dict):
        for key, value in state.items():
            yield f".{key}", str(key), value


def _children(obj: Any) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(path segment, name, child)`` for the parts pickled along with ``obj``."""
    if isinstance(obj, types.FunctionType):
        yield from _function_children(obj)
        return
    if isinstance(obj, types.MethodType):
        yield ".__func__", "__func__", obj.__func__
        yield ".__self__", "__self__", obj.__self__
        return
    if isinstance(obj, types.BuiltinMethodType):
        owner = getattr(obj, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            yield ".__self__", "__self__", owner
        return
    if isinstance(obj, functools.partial):
        yield ".func", "func", obj.func
        for i, arg in enumerate(obj.args):
            yield f".args[{i}]", f"args[{i}]", arg
        for key, value in obj.keywords.items():
            yield f".keywords[{key!r}]", key, value
        return
    if isinstance(obj, type):
        for attr, value in list(vars(obj).items()):
            if attr not in _CLASS_BOOKKEEPING:
                yield f".{attr}", attr, value
        return
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            yield f"[{key!r}]", repr(key), value
            yield f" <key {_short_repr(key, 40)}>", repr(key), key
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        for field, value in zip(obj._fields, obj, strict=False):
            yield f".{field}", field, value
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield f"[{i}]", f"[{i}]", value
    elif isinstance(obj, (set, frozenset)):
        for value in list(obj):
            yield f" <item {_short_repr(value, 40)}>", "item", value
    found = False
    for child in _attribute_children(obj):
        found = True
        yield child
    if not found and not isinstance(obj, (dict, list, tuple, set, frozenset)):
        yield from _reduce_children(obj)


# ------------------------------------------------------------------------------ the walk


def find_unserializable(
    obj: Any, name: str = "obj", depth: int = 6, max_failures: int = _MAX_FAILURES
) -> list[FailureTuple]:
    """Return the leaf objects inside ``obj`` that fail to pickle, with their paths.

    Empty when ``obj`` pickles. ``depth`` bounds how many levels below ``obj`` the walk
    descends; an object at that depth that still fails is reported as it is. The same
    leaf reached by several paths is reported once, under the first path found.
    """
    error = _pickle_error(obj)
    if error is None:
        return []
    failures: list[FailureTuple] = []
    seen_leaves: set[int] = set()
    on_path: set[int] = set()

    def walk(node: Any, path: str, node_name: str, parent: Any, level: int, err: BaseException):
        if len(failures) >= max_failures:
            return
        found_failing_child = False
        if level < depth:
            on_path.add(id(node))
            try:
                children = list(_children(node))
            except Exception:  # an object whose introspection itself fails is a leaf
                children = []
            for segment, child_name, child in children:
                if len(failures) >= max_failures:
                    break
                if id(child) in on_path:
                    continue  # a cycle back to an ancestor: the ancestor is already walked
                child_err = _pickle_error(child)
                if child_err is None:
                    continue
                found_failing_child = True
                walk(child, path + segment, child_name, node, level + 1, child_err)
            on_path.discard(id(node))
        if not found_failing_child and id(node) not in seen_leaves:
            seen_leaves.add(id(node))
            failures.append(FailureTuple(node, node_name, parent, path, _error_text(err)))

    walk(obj, name, name, None, 0, error)
    return failures


def describe_unserializable(obj: Any, name: str, depth: int = 6) -> str:
    """One paragraph saying which objects inside ``obj`` cannot be pickled, and where.

    ``name`` is how the caller refers to ``obj`` and becomes the root of every path, so
    ``describe_unserializable(args, "args")`` yields paths like ``args[1]['conn'].sock``.
    Meant for error messages on the task-submission path.
    """
    failures = find_unserializable(obj, name, depth)
    head = f"{name} (type {_type_name(obj)})"
    if not failures:
        return (
            f"{head} pickled without error when inspected again; whatever failed may depend "
            "on state that has changed since."
        )
    hint = (
        " Objects bound to one process, such as locks, sockets, open files and database "
        "connections, cannot be sent to another: create them inside the task or actor, or "
        "give their owner a __reduce__ that rebuilds them."
    )
    if len(failures) == 1 and failures[0].path == name:
        return f"{head} cannot be serialized: {failures[0].error}.{hint}"
    parts = [f"{f.path} (type {_type_name(f.obj)}: {f.error})" for f in failures]
    listed = "; ".join(parts)
    more = " (and possibly more)" if len(failures) >= _MAX_FAILURES else ""
    noun = "this object" if len(failures) == 1 else f"these {len(failures)} objects"
    return f"{head} cannot be serialized because it contains {noun}{more}: {listed}.{hint}"


def inspect_serializability(
    base_obj: Any, name: str | None = None, depth: int = 3, print_file: Any | None = None
) -> tuple[bool, set[FailureTuple]]:
    """Report whether ``base_obj`` serializes and, if not, which objects inside it fail.

    The report is printed to ``print_file`` (stdout by default) so it can be used
    interactively, like ``ray.util.inspect_serializability``.

    Args:
        base_obj: the object to check.
        name: how to call it in the report and paths; defaults to its ``__name__`` or type.
        depth: how many levels below ``base_obj`` to search for the failing objects.
        print_file: file object passed to ``print``.

    Returns:
        ``(True, set())`` if it serializes, else ``(False, {FailureTuple, ...})`` naming the
        innermost objects that fail.
    """
    if name is None:
        name = getattr(base_obj, "__name__", None) or _type_name(base_obj)

    def out(line: str = "") -> None:
        print(line, file=print_file)

    rule = "=" * 64
    out(rule)
    out(f"Checking serializability of {name}: {_short_repr(base_obj)}")
    out(rule)
    failures = find_unserializable(base_obj, name, depth)
    if not failures:
        out(f"{name} serializes.")
        out(rule)
        return True, set()
    out(f"{name} (type {_type_name(base_obj)}) does NOT serialize.")
    out(f"Found {len(failures)} unserializable object(s) inside it:")
    for failure in failures:
        out(f"    {failure.path} (type {_type_name(failure.obj)}): {failure.error}")
    out(rule)
    out("Move these objects into the function or class that uses them, or make them")
    out("picklable (for example with __reduce__), and check again.")
    out(rule)
    return False, set(failures)
