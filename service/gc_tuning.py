"""Cyclic garbage collector settings for the long-running server (`MMVAE_GC_TUNING`).

Measured on the digits-demo under load (bench/RESULTS.md): with Python's defaults the collector
took ~5 % of the server's CPU in youngest-generation passes (each ~1 ms, because a request
leaves hundreds of short-lived containers behind) and, every few seconds, a full pass over the
~300,000 objects of torch, FastAPI and the models: a ~150 ms pause for every request in flight.

- `tune()`: the youngest generation is collected every `GEN0_THRESHOLD` allocations instead of
  700 (the transient garbage of a few dozen requests stays far below it).
- `settle()`: after startup and after each model load or unload, a full collection, then
  `gc.freeze()` moves every surviving object out of the collector's sight, so later full passes
  only look at what was created since. An unload first unfreezes, so an unloaded model's cycles
  are collected.
- `restore()`: Python's defaults again, at shutdown (tests start many apps in one process).
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
_saved: tuple[int, int, int] | None = None


def tune() -> None:
    global _saved
    if _saved is None:
        _saved = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, *_saved[1:])


def settle() -> None:
    """Collect everything collectable, then exempt the survivors from later passes. Holds the
    GIL for the full pass (~100-200 ms with torch loaded); call it on loads, not per request."""
    if _saved is None:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def restore() -> None:
    global _saved
    if _saved is None:
        return
    gc.unfreeze()
    gc.set_threshold(*_saved)
    _saved = None
