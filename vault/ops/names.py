"""Names reserved for the repository: never committed, refused in a tree at checkout.

git refuses ``.git`` at any depth of a tree, in every spelling some file system takes for it
(``verify_path`` in ``read-cache.c``; CVE-2014-9390). vault does the same for its own names, so
that no version can write into a repository, replace one, or plant files a later checkout would
take for its own:

* ``.vault``: the default repository directory;
* ``.vault-tmp-*``: vault's temporary files and checkout staging directories.

A name is compared after the changes case-insensitive or normalising file systems make: case is
folded (NTFS, APFS, HFS+), trailing dots and spaces are dropped (NTFS and FAT drop them), and the
code points HFS+ ignores are removed. ``vault~1`` (the 8.3 short name NTFS gives ``.vault``) is
reserved too.
"""

from __future__ import annotations

from ..fsutil import TMP_PREFIX

REPO_NAME = ".vault"

# Code points HFS+ ignores when it compares names (git's is_hfs_dotgit list), so that
# ".va\u200cult" is ".vault" there.
_HFS_IGNORED = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def fold(name: str) -> str:
    """``name`` as a case-insensitive, normalising file system compares it."""
    return name.translate(_HFS_IGNORED).rstrip(" .").casefold()


def is_reserved(name: str) -> bool:
    """Whether the path component ``name`` is one of vault's own names (see the module)."""
    folded = fold(name)
    return folded in (REPO_NAME, "vault~1") or folded.startswith(TMP_PREFIX)
