/** A setting that cannot work: the message names the option or variable to fix. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}
