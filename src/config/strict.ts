import { homedir } from 'node:os';
import { z } from 'zod';

/**
 * Reading the configuration schemas themselves: which keys an object knows (so a key nobody reads is
 * refused, with the nearest known one), where a key has moved, and each key's default and choices (so
 * `--help` shows them from the schema, the one place they are written).
 */

type Path = readonly string[];
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Looks through the wrappers that do not change which keys an object has. */
function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    if (
      s instanceof z.ZodDefault ||
      s instanceof z.ZodPrefault ||
      s instanceof z.ZodOptional ||
      s instanceof z.ZodNullable
    ) {
      s = s.unwrap() as z.ZodType;
    } else if (s instanceof z.ZodPipe) {
      // `preprocess` is transform → schema; `.transform()` is schema → transform.
      s = (s.in instanceof z.ZodTransform ? s.out : s.in) as z.ZodType;
    } else {
      return s;
    }
  }
}

const shapeOf = (o: z.ZodObject) => o.shape as Record<string, z.ZodType>;

/** The option of a discriminated union that a value selects (its discriminator, or the one that defaults it). */
function optionFor(u: z.ZodDiscriminatedUnion, value: Obj): z.ZodObject | undefined {
  const key = u.def.discriminator;
  return (u.options as z.ZodType[]).find(
    (o): o is z.ZodObject => o instanceof z.ZodObject && shapeOf(o)[key]!.safeParse(value[key]).success,
  );
}

/** The discriminator values of a union's options ('builtin', 'openai-compatible'). */
function variantNames(u: z.ZodDiscriminatedUnion, options = u.options as z.ZodType[]): string[] {
  const key = u.def.discriminator;
  return options.flatMap((o) => {
    const d = o instanceof z.ZodObject ? unwrap(shapeOf(o)[key]!) : null;
    return d instanceof z.ZodLiteral ? [...d.values].map(String) : [];
  });
}

// ─── keys that moved ───

/** Where a key of an object now lives: a path from that object, and keys its new parent needs with it. */
export interface MovedKey {
  to: readonly string[];
  with?: Obj;
}

const movedKeys = new WeakMap<z.ZodObject, Record<string, MovedKey>>();

/** Records keys an object schema no longer has, so a config still using them is told where they went. */
export function withMovedKeys<S extends z.ZodObject>(schema: S, moved: Record<string, MovedKey>): S {
  movedKeys.set(schema, moved);
  return schema;
}

// ─── unknown keys ───

export type KeyProblem =
  | { kind: 'unknown'; path: Path; suggestion?: Path }
  | { kind: 'moved'; path: Path; to: Path; example: string }
  | {
      kind: 'other-variant';
      path: Path;
      variants: string[];
      selector: Path;
      selected: string;
      defaulted: boolean;
    };

/** Every key of `value` that `schema` does not know, looking into nested objects. */
export function unknownKeys(schema: z.ZodType, value: unknown, path: Path = []): KeyProblem[] {
  const s = unwrap(schema);
  if (s instanceof z.ZodArray && Array.isArray(value)) {
    return value.flatMap((v, i) => unknownKeys(s.element as z.ZodType, v, [...path, String(i)]));
  }
  if (!isObj(value)) return [];
  if (s instanceof z.ZodDiscriminatedUnion) {
    const option = optionFor(s, value);
    if (!option) return []; // the parse names the discriminator
    return objectKeys(option, value, path, s);
  }
  if (s instanceof z.ZodObject) return objectKeys(s, value, path);
  return [];
}

function objectKeys(o: z.ZodObject, value: Obj, path: Path, union?: z.ZodDiscriminatedUnion): KeyProblem[] {
  const shape = shapeOf(o);
  const moved = movedKeys.get(o) ?? {};
  return Object.entries(value).flatMap(([k, v]): KeyProblem[] => {
    if (v === undefined) return [];
    const at = [...path, k];
    if (shape[k]) return unknownKeys(shape[k], v, at);
    const m = moved[k];
    if (m) {
      const to = [...path, ...m.to];
      return [{ kind: 'moved', path: at, to, example: inlineJson(nest(m.to, v, m.with)) }];
    }
    if (union) {
      const variants = (union.options as z.ZodType[]).filter(
        (x) => x !== o && x instanceof z.ZodObject && shapeOf(x)[k],
      );
      if (variants.length) {
        const d = union.def.discriminator;
        return [
          {
            kind: 'other-variant',
            path: at,
            variants: variantNames(union, variants),
            selector: [...path, d],
            selected: variantNames(union, [o]).join(' or '),
            defaulted: value[d] === undefined,
          },
        ];
      }
    }
    const near = nearest(k, [...Object.keys(shape), ...Object.keys(moved)]);
    const suggestion =
      near === undefined ? undefined : moved[near] ? [...path, ...moved[near].to] : [...path, near];
    return [{ kind: 'unknown', path: at, ...(suggestion ? { suggestion } : {}) }];
  });
}

/** `{"backend": {"kind": "builtin", "tokenDelayMs": 15}}` for a value moved to backend.tokenDelayMs. */
function nest(to: Path, value: unknown, withKeys: Obj | undefined): unknown {
  const [head, ...rest] = to;
  if (head === undefined) return value;
  return rest.length === 0 ? { ...withKeys, [head]: value } : { [head]: nest(rest, value, withKeys) };
}

/** JSON on one line, spaced as people write it: {"a": {"b": 1}}. */
function inlineJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(inlineJson).join(', ')}]`;
  if (isObj(v)) {
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}: ${inlineJson(x)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** One line about a key problem; `where` says which source holds it ("in w.json", "in the flags"). */
export function describeKeyProblem(p: KeyProblem, where: string): string {
  const name = p.path.join('.');
  switch (p.kind) {
    case 'unknown':
      return `unknown key '${name}' ${where}${p.suggestion ? `; did you mean '${p.suggestion.join('.')}'?` : ''}`;
    case 'moved':
      return `key '${name}' ${where} has moved to '${p.to.join('.')}': ${p.example}`;
    case 'other-variant':
      return (
        `key '${name}' ${where} is an option of ${p.selector.slice(0, -1).join('.')} ` +
        `${p.variants.map((v) => `'${v}'`).join(' or ')}, but ${p.selector.join('.')} is '${p.selected}'` +
        (p.defaulted ? ' (the default)' : '')
      );
  }
}

// ─── nearest key ───

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The known key a typo most likely meant (case, `-` and `_` aside), if any is close enough. */
export function nearest(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(norm(key), norm(k));
    if (!best || d < best.d) best = { k, d };
  }
  if (!best) return undefined;
  return best.d <= Math.max(1, Math.floor(Math.min(key.length, best.k.length) / 3)) ? best.k : undefined;
}

// ─── defaults and choices, for --help ───

/** The schema of a key (a path through nested objects; in a union, the first option that has the key). */
function fieldAt(schema: z.ZodType, path: Path): z.ZodType | undefined {
  let s: z.ZodType | undefined = schema;
  for (const k of path) {
    const u: z.ZodType = unwrap(s);
    const options = u instanceof z.ZodDiscriminatedUnion ? (u.options as z.ZodType[]) : [u];
    s = options.map((o) => (o instanceof z.ZodObject ? shapeOf(o)[k] : undefined)).find(Boolean);
    if (!s) return undefined;
  }
  return s;
}

/** A key's default as the schema holds it (undefined: none). */
export function defaultAt(schema: z.ZodType, path: Path): unknown {
  const f = fieldAt(schema, path);
  if (!f) throw new Error(`no config key ${path.join('.')}`);
  if (f instanceof z.ZodDefault) return f.def.defaultValue;
  if (f instanceof z.ZodPrefault) return f.parse(undefined);
  return undefined;
}

/** The values a key may take, when they are a fixed set (an enum, or a union's discriminator). */
export function choicesAt(schema: z.ZodType, path: Path): string[] | undefined {
  const parent = path.length > 1 ? fieldAt(schema, path.slice(0, -1)) : schema;
  const u = parent && unwrap(parent);
  if (u instanceof z.ZodDiscriminatedUnion && u.def.discriminator === path[path.length - 1]) {
    return variantNames(u);
  }
  const f = fieldAt(schema, path);
  const e = f && unwrap(f);
  return e instanceof z.ZodEnum ? (e.options as string[]).map(String) : undefined;
}

/** A default as `--help` shows it: host:port, 'off' for null, `~` for the home directory; none for false or []. */
export function showDefault(v: unknown): string | undefined {
  if (v === undefined || v === false || (Array.isArray(v) && v.length === 0)) return undefined;
  if (v === null) return 'off';
  if (Array.isArray(v)) return v.map(showDefault).join(', ');
  if (isObj(v) && typeof v.host === 'string' && typeof v.port === 'number') {
    return `${v.host.includes(':') ? `[${v.host}]` : v.host}:${v.port}`;
  }
  if (typeof v === 'string') {
    const home = homedir();
    return v === home || v.startsWith(`${home}/`) ? `~${v.slice(home.length)}` : v;
  }
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
