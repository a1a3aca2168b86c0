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

/**
 * Problems that each concern one thing (a metric family), reported a round at a time (a
 * gather): each is logged when it appears, and again only after a round without it.
 */
export class KeyedProblemLog<Problem> {
  private current = new Set<string>()

  constructor(
    private readonly keyOf: (problem: Problem) => string,
    private readonly log: (problem: Problem) => void,
  ) {}

  round(problems: readonly Problem[]): void {
    const seen = new Set<string>()
    for (const problem of problems) {
      const key = this.keyOf(problem)
      if (!this.current.has(key) && !seen.has(key)) this.log(problem)
      seen.add(key)
    }
    this.current = seen
  }
}
