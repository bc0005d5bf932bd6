"""The build cache as users see it: `sg.cache_info()`, `sg.clear_cache()`, `prune(max_bytes)`
(least recently used first) and `python -m symgrad cache info|clear|prune --max-bytes N`;
SYMGRAD_CACHE_MAX_BYTES prunes automatically after each compile.

An entry is `<build dir>/<key[:2]>/<key>/` (kernel.c, kernel.so, its digest and seal; see
symgrad.build). Loading an entry stamps its folder's time, which is what "recently used"
means. Removal is safe while other processes use the cache: an entry is renamed away whole
and then deleted (never left half-deleted where a process would load it), a library a process
has loaded stays mapped after it is unlinked (Linux), a process that finds its entry gone
builds it again, and builds in flight (temporary folders) are never touched. The thread
pool's library (`runtime/`) is kept: every module links it."""
from __future__ import annotations

import json
import os
from pathlib import Path

from symgrad import build, config


def _entries(root: Path):
    """(folder, bytes, last use) of every published entry."""
    out = []
    try:
        shards = [p for p in root.iterdir() if len(p.name) == 2 and p.is_dir()]
    except OSError:
        return out
    for shard in shards:
        try:
            folders = [p for p in shard.iterdir() if build._is_cache_key(p.name) and p.is_dir()]
        except OSError:
            continue
        for folder in folders:
            try:
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                used = folder.stat().st_mtime
            except OSError:               # removed meanwhile by another process
                continue
            out.append((folder, size, used))
    return out


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


def cache_info() -> dict:
    """The build cache: its location, how many compiled entries it holds and their bytes, and
    the bytes of everything in it (index, templates' bytecode, the thread pool, failed sources)."""
    root = build.build_dir()
    entries = _entries(root)
    index = root / "index"
    records = sum(1 for _ in index.rglob("*.json")) if index.is_dir() else 0
    return {"location": str(root), "entries": len(entries), "entry_bytes": sum(e[1] for e in entries),
            "index_records": records, "bytes": _folder_bytes(root) if root.is_dir() else 0,
            "max_bytes": config.cache_max_bytes()}


def _protected() -> set:
    """Keys this process is building: never pruned from under it. (A library that is loaded
    may go: its mapping outlives the file, and this process keeps using it.)"""
    return {b.key for b in list(build._pending)}


def _drop_records(root: Path, keys: set):
    """Remove the graph-index records that lead to the removed entries `keys` (a record that is
    left would be ignored anyway: its entry fails the check)."""
    index = root / "index"
    if not keys or not index.is_dir():
        return
    for path in index.rglob("*.json"):
        try:
            if json.loads(path.read_text()).get("key") in keys:
                path.unlink()
        except (OSError, ValueError, AttributeError):
            pass


def prune(max_bytes: int, keep=()) -> dict:
    """Remove the least recently used entries until the entries take at most `max_bytes`.
    Returns {"removed": n, "freed_bytes": b, "entry_bytes": what is left}."""
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise ValueError(f"prune: max_bytes must be a non-negative int, got {max_bytes!r}")
    root = build.build_dir()
    entries = sorted(_entries(root), key=lambda e: e[2])         # oldest use first
    total = sum(e[1] for e in entries)
    keep, removed, freed = _protected() | set(keep), set(), 0
    for folder, size, _ in entries:
        if total <= max_bytes:
            break
        if folder.name in keep:
            continue
        build.remove_entry(folder)
        if not folder.exists():
            removed.add(folder.name)
            total -= size
            freed += size
    _drop_records(root, removed)
    if removed:
        build.log.info("symgrad: pruned %d cache entr%s (%d bytes) to stay under %d bytes", len(removed),
                       "y" if len(removed) == 1 else "ies", freed, max_bytes)
    return {"removed": len(removed), "freed_bytes": freed, "entry_bytes": total}


def clear_cache() -> dict:
    """Remove every compiled entry, the graph index and the failed sources (not the thread
    pool's library, which loaded modules link). Functions already loaded keep working; later
    compiles build again. Returns {"removed": n, "freed_bytes": b}."""
    root = build.build_dir()
    before = cache_info()
    keep = _protected()
    removed = 0
    for folder, _, _ in _entries(root):
        if folder.name not in keep:
            build.remove_entry(folder)
            removed += not folder.exists()
    for name in ("index", "failed"):
        if (root / name).is_dir():
            build.remove_entry(root / name)
    after = cache_info()
    return {"removed": removed, "freed_bytes": max(0, before["bytes"] - after["bytes"])}



def auto_prune(keep=()):
    """After a compile: keep the cache under SYMGRAD_CACHE_MAX_BYTES, if it is set (the entry
    just built, `keep`, stays)."""
    limit = config.cache_max_bytes()
    if limit is not None:
        prune(limit, keep)


build.after_publish.append(lambda key: auto_prune(keep={key}))


def main(argv) -> int:
    """`python -m symgrad cache info|clear|prune --max-bytes N`."""
    import argparse
    parser = argparse.ArgumentParser(prog="symgrad cache", description="symgrad's build cache")
    parser.add_argument("action", choices=["info", "clear", "prune"])
    parser.add_argument("--max-bytes", help="prune: the size to prune to (bytes; k, M, G suffixes allowed)")
    args = parser.parse_args(argv)
    if args.action == "info":
        info = cache_info()
        print(f"location:      {info['location']}")
        print(f"entries:       {info['entries']} ({info['entry_bytes']} bytes)")
        print(f"index records: {info['index_records']}")
        print(f"total bytes:   {info['bytes']}")
        print(f"limit:         {info['max_bytes'] if info['max_bytes'] is not None else 'none'}"
              f" (SYMGRAD_CACHE_MAX_BYTES)")
        return 0
    if args.action == "clear":
        done = clear_cache()
        print(f"removed {done['removed']} entries ({done['freed_bytes']} bytes) from {build.build_dir()}")
        return 0
    if args.max_bytes is None:
        parser.error("prune needs --max-bytes N")
    try:
        limit = config.parse_bytes(args.max_bytes, "--max-bytes")
    except ValueError as e:
        parser.error(str(e))
    done = prune(limit)
    print(f"removed {done['removed']} entries ({done['freed_bytes']} bytes); {done['entry_bytes']} bytes "
          f"of entries left in {build.build_dir()}")
    return 0
