"""The official `spooled` SDK, importable beside our Django app of the same name.

Our app is the top-level package `spooled` (the repository root comes first on sys.path), so `import spooled`
finds the app, never the SDK installed in site-packages. This finder loads the SDK under the alias
`spooled_sdk`: its files are read from site-packages and each `from spooled…`/`import spooled…` statement in them
is rewritten to the alias before compiling, so the SDK's lazy imports (realtime, gRPC) resolve to the SDK too.
Usage: `from tests.spooled.sdk_alias import sdk` (the package `spooled_sdk`), or `import spooled_sdk.worker`
once this module was imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from pathlib import Path
from types import CodeType, ModuleType

ALIAS = "spooled_sdk"
_REPO = Path(__file__).resolve().parents[2]
_IMPORT = re.compile(rb"^(\s*)(from|import)(\s+)spooled(?=[.\s])", re.MULTILINE)


def _sdk_dir() -> Path:
    """The installed SDK's package folder: `spooled` on sys.path outside the repository."""
    paths = [p for p in sys.path if p and Path(p).resolve() != _REPO]
    spec = importlib.machinery.PathFinder.find_spec("spooled", paths)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("The `spooled` SDK is not installed (pip install 'spooled[all]==1.6.0').")
    return Path(next(iter(spec.submodule_search_locations)))


class _Loader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str) -> CodeType:
        source = _IMPORT.sub(rb"\1\2\3" + ALIAS.encode(), self.get_data(self.path))
        return compile(source, self.path, "exec", dont_inherit=True)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        base = self.root.joinpath(*fullname.split(".")[1:])
        if (base / "__init__.py").is_file():
            origin, locations = base / "__init__.py", [str(base)]
        elif base.with_suffix(".py").is_file():
            origin, locations = base.with_suffix(".py"), None
        else:
            return None
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_Loader(fullname, str(origin)), submodule_search_locations=locations
        )


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder(_sdk_dir()))

sdk: ModuleType = importlib.import_module(ALIAS)
importlib.import_module(ALIAS + ".config")
