// The memory siblings' answers are read into, kept from one gather to the next. Read the usual
// way, a sibling's part arrives as 64 KiB socket chunks, each shrunk to its length, then copied
// into one buffer: a burst of scrapes makes several allocations per part per gather, and the
// allocator's heap they fragment stays resident after the burst (docs/design.md). Here each
// part is read straight into one buffer per sibling and format, sized by the length its header
// announces, reused while gathers keep coming, and dropped once none has come for `idleMs`, so
// a quiet worker keeps none.

/** The first size for a sibling never read before: a small registry's part fits. */
export const FIRST_SIZE = 64 * 1024

export class ReceiveBuffers {
  /** Buffers not lent out, by key. */
  private readonly kept = new Map<string, Buffer>()
  private readonly idle: NodeJS.Timeout

  constructor(idleMs: number) {
    this.idle = setTimeout(() => this.kept.clear(), idleMs)
    this.idle.unref()
  }

  /**
   * The buffer to read `key`'s answer into, the caller's alone until it gives it back: the kept
   * one, or a new one while that is lent (two reads of one key at once) or dropped.
   */
  take(key: string): Buffer {
    this.idle.refresh()
    const kept = this.kept.get(key)
    this.kept.delete(key)
    return kept ?? Buffer.allocUnsafe(FIRST_SIZE)
  }

  /**
   * Keeps `buffer` (possibly a grown one) for `key`'s next read; the caller no longer holds
   * anything that points into it.
   */
  give(key: string, buffer: Buffer): void {
    this.kept.set(key, buffer)
    this.idle.refresh()
  }

  clear(): void {
    clearTimeout(this.idle)
    this.kept.clear()
  }
}

/**
 * The buffer to keep for an answer of `bytes`: an eighth more, so that a part growing a little
 * from gather to gather still fits, and one byte free for the read that finds its end.
 */
export function sizeFor(bytes: number): number {
  return bytes + (bytes >> 3) + 1
}

/**
 * A buffer with room for `needed` bytes holding the first `filled` bytes of `buffer`: itself
 * if it has the room, else a new one of `needed` bytes (`exact`) or at least twice the size.
 */
export function grow(buffer: Buffer, filled: number, needed: number, exact: boolean): Buffer {
  if (needed <= buffer.length) return buffer
  const grown = Buffer.allocUnsafe(exact ? needed : Math.max(needed, buffer.length * 2))
  buffer.copy(grown, 0, 0, filled)
  return grown
}
