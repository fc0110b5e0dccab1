"""What every host of Python nodes does the same way — the worker process of the
multiprocess executor and the WASM engine's Pyodide host: find the node class a manifest
names (modules, inline source, the `@remotemedia.node` registry, entry points) and word
a node's exception with the part of its traceback that is the node's own.

Pure Python (standard library only), so it runs in Pyodide too.
"""

import hashlib
import sys
import traceback
import types
from importlib import import_module, metadata

from . import sdk

ENTRY_POINT_GROUP = "remotemedia.nodes"


def _entry_points():
    try:
        eps = metadata.entry_points()
    except Exception:  # no installed distributions to read (a bare Pyodide)
        return []
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, []))


def source_module_name(source):
    """The module name inline source runs as: the same code is one module, however many
    nodes or sessions use it."""
    return "_remotemedia_source_" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def load_source(source, label="multiprocess.source"):
    """Runs `source` (a module's code, from a manifest's `multiprocess.source`) as a module
    once and returns it; tracebacks name it `<label>` with the source's own line numbers."""
    name = source_module_name(source)
    module = sys.modules.get(name)
    if module is not None:
        return module
    module = types.ModuleType(name)
    module.__file__ = f"<{label}>"
    code = compile(source, f"<{label}>", "exec")
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def find_node_class(node_type, modules=(), source=None):
    """The class for `node_type`: runs `source` and imports `modules`, then looks in the
    `@remotemedia.node` registry, then in the `remotemedia.nodes` entry points. LookupError
    naming what was searched otherwise."""
    if source is not None:
        load_source(source)
    for name in modules:
        import_module(name)
    cls = sdk.registered_nodes().get(node_type)
    if cls is not None:
        return cls
    entry_points = _entry_points()
    for ep in entry_points:
        if ep.name == node_type:
            cls = ep.load()
            if not isinstance(cls, type):
                raise TypeError(f"entry point {ep.name} = {ep.value} is not a class")
            return cls
    registered = ", ".join(sorted(sdk.registered_nodes())) or "none"
    published = ", ".join(sorted({ep.name for ep in entry_points})) or "none"
    searched = f"modules imported: {', '.join(modules)}; " if modules else ""
    if source is not None:
        searched += "multiprocess.source run; "
    raise LookupError(
        f"no Python node class {node_type!r} was found ({searched}registered with "
        f"@remotemedia.node: {registered}; published in the {ENTRY_POINT_GROUP!r} entry points: "
        f"{published}). Install the package that provides it, or list the module that defines "
        f"it in the node's multiprocess.modules")


def describe(exc, host_files=()):
    """`TypeName: message` and the traceback, without the leading frames of the host's
    own files (`host_files`: the calling modules' `__file__`s, and this one's)."""
    skip = {__file__, sdk.__file__, *host_files}
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(type(exc), exc, tb))
