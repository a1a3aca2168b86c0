/**
 * Whether `value` is an object as JSON makes them: not null, not an array, and of no class but
 * Object's (or none), so its own keys are all it holds.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}
