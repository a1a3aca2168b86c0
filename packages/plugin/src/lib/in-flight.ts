/**
 * Work in flight by key: whoever asks for a key while its work runs shares that work's promise,
 * and the key is forgotten once the work settles, so the next ask starts afresh. `Note` is what
 * a caller keeps beside the work to decide whether it may share it.
 */
export class InFlight<K, V, Note = undefined> {
  private readonly running = new Map<K, { promise: Promise<V>; note: Note }>()

  get(key: K): { readonly promise: Promise<V>; readonly note: Note } | undefined {
    return this.running.get(key)
  }

  /** Runs `work` under `key`; the caller checked that nothing runs under it. */
  start(key: K, work: Promise<V>, note: Note): Promise<V> {
    const entry = {
      promise: work.finally(() => {
        if (this.running.get(key) === entry) this.running.delete(key)
      }),
      note,
    }
    this.running.set(key, entry)
    return entry.promise
  }

  /** The work running under `key`, or `start()`'s, begun now. */
  share(key: K, start: () => Promise<V>, note: Note): Promise<V> {
    return this.running.get(key)?.promise ?? this.start(key, start(), note)
  }
}
