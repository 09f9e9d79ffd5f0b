"""What a commit leaves out: ``.vaultignore`` files and ``--exclude`` / ``--include`` patterns.

Every source speaks gitignore syntax (matched by the ``pathspec`` library). They are read in
this order, and for each path the last source with a matching pattern decides, as the last
matching line of one ``.gitignore`` does:

1. ``.vaultignore`` in the project folder (the folder holding the repository); its patterns
   match paths as seen from that folder when the committed directory lies inside it (as a
   ``.gitignore`` at the top of a git work tree does), else paths within the committed
   directory;
2. ``.vaultignore`` at the top of the committed directory, matching paths within it;
3. ``exclude`` patterns (``--exclude``), matching paths within the committed directory;
4. ``include`` patterns (``--include``): a path they match is committed whatever the sources
   above say, like a ``!pattern`` line written last. ``--exclude '*' --include '*.safetensors'``
   thus commits the safetensors files only.

Unlike git, a negation re-includes a file even inside an excluded directory: the directory is
then walked, and every file in it is matched. The repository itself and ``.vault`` at any depth
are always left out (:mod:`vault.ops.names`), whatever the rules say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from .errors import BadValue

IGNORE_FILE = ".vaultignore"
"""The name of an ignore file, in the project folder or at the top of a committed directory."""

OPTION = "--exclude"
"""The ``source`` recorded for a path left out by an ``exclude`` pattern."""


@dataclass(frozen=True)
class Excluded:
    """A path a commit left out by rule: a file, or a directory (``path`` ends in ``/``) none
    of whose files was committed.

    Attributes:
        path: relative to the committed directory, ``/``-separated.
        rule: the pattern that left it out; ``None`` when several did (files of a directory).
        source: where the rule comes from: ``--exclude``, or the path of the ``.vaultignore``
            (relative to the project folder when inside it).
        files: files left out.
        bytes: their size.
    """

    path: str
    rule: str | None
    source: str | None
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        """The record a version keeps (``docs/format.md``, "Excluded paths")."""
        return {
            "path": self.path,
            "rule": self.rule,
            "source": self.source,
            "files": self.files,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class _Source:
    spec: pathspec.GitIgnoreSpec
    lines: tuple[str, ...]  # the spec's patterns, by index
    prefix: str  # prepended to a path relative to the committed directory
    name: str  # for the record: --exclude, or the ignore file's path
    include: bool  # an --include source: a match commits the path


class Rules:
    """The compiled rules of one commit of a directory.

    Args:
        root: the committed directory.
        project: the project folder (the folder holding the repository), or ``None``.
        exclude: ``--exclude`` patterns.
        include: ``--include`` patterns.
        ignore_files: read the ``.vaultignore`` files (internal commits such as backups do not).

    Raises:
        BadValue: an ``exclude`` or ``include`` pattern that is empty, a comment, starts with
            ``!`` or does not compile; a ``.vaultignore`` that cannot be read as UTF-8.
    """

    def __init__(
        self,
        root: Path,
        project: Path | None,
        *,
        exclude: list[str] | tuple[str, ...] = (),
        include: list[str] | tuple[str, ...] = (),
        ignore_files: bool = True,
    ) -> None:
        self.sources: list[_Source] = []
        if ignore_files:
            here = os.path.realpath(root)
            top = os.path.realpath(project) if project is not None else None
            read: set[str] = set()
            for folder in (top, here):
                if folder is None or folder in read:
                    continue
                read.add(folder)
                self._read_file(Path(folder) / IGNORE_FILE, here, top)
        for flag, patterns in (("--exclude", exclude), ("--include", include)):
            lines = tuple(_check_pattern(flag, p) for p in patterns)
            if lines:
                spec = pathspec.GitIgnoreSpec.from_lines(lines)
                self.sources.append(_Source(spec, lines, "", OPTION, flag == "--include"))
        self.negates = any(
            s.include or any(p.include is False for p in s.spec.patterns) for s in self.sources
        )
        """Whether some rule re-includes paths: an excluded directory must then be walked."""

    def _read_file(self, path: Path, root: str, project: str | None) -> None:
        try:
            text = path.read_bytes().decode()
        except (FileNotFoundError, NotADirectoryError):  # none, or a file is committed
            return
        except IsADirectoryError:
            raise BadValue("ignore file", str(path), "is a directory") from None
        except UnicodeDecodeError:
            raise BadValue("ignore file", str(path), "is not UTF-8 text") from None
        lines = tuple(text.splitlines())
        folder = os.path.dirname(path)
        prefix = ""
        if folder != root and project is not None and _inside(root, project):
            prefix = Path(os.path.relpath(root, project)).as_posix() + "/"
        name = str(path)
        if project is not None and _inside(str(path), project):
            name = Path(os.path.relpath(path, project)).as_posix()
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        self.sources.append(_Source(spec, lines, prefix, name, False))

    def __bool__(self) -> bool:
        return bool(self.sources)

    def match(self, rel: str, is_dir: bool = False) -> tuple[str, str] | None:
        """Whether the path ``rel`` (relative to the committed directory) is left out.

        Returns:
            ``(rule, source)`` of the pattern that leaves it out, or ``None`` when it is kept.
        """
        key = rel + "/" if is_dir else rel
        for source in reversed(self.sources):
            found = source.spec.check_file(source.prefix + key)
            if found.include is None:
                continue
            if source.include or not found.include:
                return None
            assert found.index is not None
            return source.lines[found.index].strip(), source.name
        return None


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both absolute)."""
    rel = os.path.relpath(path, folder)
    return rel != ".." and not rel.startswith(".." + os.sep) and not os.path.isabs(rel)


def _check_pattern(flag: str, pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern.strip():
        raise BadValue(flag, pattern, "expected a pattern (gitignore syntax)")
    if pattern.startswith("!"):
        other = "--include" if flag == "--exclude" else "--exclude"
        raise BadValue(flag, pattern, f"a pattern cannot start with '!' here: use {other}")
    if pattern.startswith("#"):
        raise BadValue(flag, pattern, "is a comment in gitignore syntax (write '\\#' for a '#')")
    if pathspec.GitIgnoreSpec.from_lines([pattern]).patterns[0].include is None:
        raise BadValue(flag, pattern, "is not a valid gitignore pattern")
    return pattern


def compact(excluded: list[Excluded], kept: list[str]) -> list[Excluded]:
    """``excluded`` with the files of a directory nothing of which was kept folded into one
    ``dir/`` entry (its rule: theirs when they share one), as ``git status`` lists an untracked
    directory. ``kept`` are the paths committed."""
    busy = {""}  # directories holding a kept path: never folded
    for path in kept:
        cut = path.rfind("/")
        while cut > 0:
            busy.add(path[: cut + 1])
            cut = path.rfind("/", 0, cut)
    groups: dict[str, list[Excluded]] = {}
    for entry in excluded:
        top = entry.path
        cut = 0
        while True:
            cut = entry.path.find("/", cut) + 1
            if cut <= 0 or cut >= len(entry.path):
                break
            if entry.path[:cut] not in busy:
                top = entry.path[:cut]
                break
        groups.setdefault(top, []).append(entry)
    out = []
    for top, group in sorted(groups.items()):
        if len(group) == 1 and group[0].path == top:
            out.append(group[0])
            continue
        rules = {(e.rule, e.source) for e in group}
        rule, source = rules.pop() if len(rules) == 1 else (None, None)
        files = sum(e.files for e in group)
        out.append(Excluded(top, rule, source, files, sum(e.bytes for e in group)))
    return out


def tree_size(folder: Path) -> tuple[int, int]:
    """Files and bytes under ``folder`` (links not followed, unreadable parts skipped): what a
    directory left out whole would have cost."""
    files = size = 0
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            files += 1
                            if entry.is_file(follow_symlinks=False):
                                size += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return files, size
