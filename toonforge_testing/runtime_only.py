"""Run Python as a ``requirements.txt``-only environment would, inside a fuller one.

A Space installs ``requirements.txt`` and nothing else. Rather than build such a virtual
environment (minutes, gigabytes), :func:`write_import_blocker` makes every installed package
that ``requirements.txt`` does not pull in unimportable, through a ``sitecustomize.py`` placed
first on ``PYTHONPATH``: the test tools, and the diffusion stack when it is not a runtime need.

    write_import_blocker(folder, ROOT / "requirements.txt")  # then run with PYTHONPATH=folder
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Present in any fresh virtual environment of this Python, whatever requirements.txt says.
BOOTSTRAP = frozenset({"pip", "setuptools", "wheel"})

_BLOCKER = '''"""Written by toonforge_testing.runtime_only: hide what requirements.txt does not install.

The path finder is wrapped so that the hidden packages look absent, as in an environment built
from requirements.txt alone: ``import`` raises ModuleNotFoundError, ``importlib.util.find_spec``
returns None and ``importlib.metadata`` does not list them.
"""

import re
import sys
from importlib.machinery import PathFinder

HIDDEN_MODULES = frozenset({modules})
HIDDEN_DISTRIBUTIONS = frozenset({distributions})


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name or "").lower()


class RuntimeOnlyPathFinder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN_MODULES:
            return None
        return PathFinder.find_spec(name, path, target)

    @staticmethod
    def find_distributions(*args, **kwargs):
        for dist in PathFinder.find_distributions(*args, **kwargs):
            if _canonical(dist.metadata["Name"]) not in HIDDEN_DISTRIBUTIONS:
                yield dist

    @staticmethod
    def invalidate_caches():
        PathFinder.invalidate_caches()


sys.meta_path[:] = [RuntimeOnlyPathFinder if f is PathFinder else f for f in sys.meta_path]
'''


def requirement_names(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file, following ``-r`` includes."""
    found: list[Requirement] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = re.match(r"^(-r|--requirement)\s+(\S+)$", line)
        if include:
            found += requirement_names(path.parent / include.group(2))
        elif not line.startswith("-"):
            found.append(Requirement(line))
    return found


def runtime_distributions(requirements: Path) -> set[str]:
    """Canonical names of the installed distributions that ``requirements`` pulls in, with
    their dependencies (markers evaluated for this interpreter, extras followed)."""
    environment = default_environment()
    todo = [(req, frozenset(req.extras)) for req in requirement_names(requirements)]
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed here
        names.add(name)
        for spec in dist.requires or []:
            try:
                dep = Requirement(spec)
            except InvalidRequirement:
                continue
            wanted = dep.marker is None or any(
                dep.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""})
            )
            if wanted:
                todo.append((dep, frozenset(dep.extras)))
    return names


def hidden_packages(requirements: Path) -> tuple[set[str], set[str]]:
    """``(top-level modules, distributions)`` installed here but outside ``requirements``'
    closure; a module shared with a runtime distribution (a namespace package) stays visible."""
    runtime = runtime_distributions(requirements) | BOOTSTRAP
    distributions = {
        canonicalize_name(dist.metadata["Name"]) for dist in metadata.distributions()
    } - runtime
    modules = set()
    for module, providers in metadata.packages_distributions().items():
        if module.isidentifier() and all(canonicalize_name(p) in distributions for p in providers):
            modules.add(module)
    return modules, distributions


def write_import_blocker(folder: Path, requirements: Path) -> tuple[set[str], set[str]]:
    """Write ``sitecustomize.py`` into ``folder`` so that Python started with ``folder`` first on
    ``PYTHONPATH`` sees only what ``requirements`` installs; returns what it hides."""
    modules, distributions = hidden_packages(requirements)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        _BLOCKER.format(modules=repr(sorted(modules)), distributions=repr(sorted(distributions))),
        encoding="utf-8",
    )
    return modules, distributions
