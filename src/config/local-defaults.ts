/** Defaults of `cocoon local` and `cocoon chain` (not daemons: no schema), shown by their `--help`. */
export const LOCAL_DEFAULTS = {
  dataDir: '.cocoon/local',
  httpPort: 10000,
  /** The built-in model's delay per token in the demo, so its stream is visible. */
  tokenDelayMs: 15,
  chainPort: 10100,
} as const;
