// A problem that recurs on a timer (every poll, every heal) is logged once, not every round,
// and again only once it changes or after a round without it.
export class ProblemLog {
  private last: string | undefined

  constructor(private readonly log: (err: Error) => void) {}

  report(err: Error): void {
    if (err.message === this.last) return
    this.last = err.message
    this.log(err)
  }

  clear(): void {
    this.last = undefined
  }
}
