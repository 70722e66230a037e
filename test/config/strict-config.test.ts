import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ConfigError,
  clientConfigSchema,
  loadConfig,
  proxyConfigSchema,
  workerConfigSchema,
} from '../../src/config/config.ts';
import { flagsToConfig } from '../../src/config/flags.ts';
import { editDistance, nearest } from '../../src/config/strict.ts';

describe('strict configuration (issue 13)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const file = (json: unknown) => {
    const p = join(dir, `config-${++n}.json`);
    writeFileSync(p, JSON.stringify(json));
    return p;
  };
  /** The ConfigError message loading this throws. */
  const refusal = (load: () => unknown): string => {
    try {
      load();
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
      return err.message;
    }
    assert.fail('the configuration was accepted');
  };

  test('an unknown key in a config file is refused for every daemon, naming the nearest known key', () => {
    for (const [schema, typo, meant] of [
      [workerConfigSchema, 'maxConcurent', 'maxConcurrent'],
      [proxyConfigSchema, 'settleIntervalSecond', 'settleIntervalSeconds'],
      [clientConfigSchema, 'httpPrt', 'httpPort'],
      [clientConfigSchema, 'max-body-bytes', 'maxBodyBytes'],
    ] as const) {
      const path = file({ [typo]: 2 });
      assert.equal(
        refusal(() => loadConfig(schema, path, {})),
        `unknown key '${typo}' in ${path}; did you mean '${meant}'?`,
      );
    }
  });

  test('an unknown key far from every known one is refused without a guess', () => {
    const path = file({ zzzzzz: 1 });
    assert.equal(
      refusal(() => loadConfig(proxyConfigSchema, path, {})),
      `unknown key 'zzzzzz' in ${path}`,
    );
  });

  test('several unknown keys are listed together', () => {
    const path = file({ maxConcurent: 2, coeficient: 3 });
    const msg = refusal(() => loadConfig(workerConfigSchema, path, {}));
    assert.match(msg, /unknown key 'maxConcurent' .*did you mean 'maxConcurrent'\?/);
    assert.match(msg, /unknown key 'coeficient' .*did you mean 'coefficient'\?/);
  });

  test('an unknown key in the flags is refused; flags given as undefined do not count', () => {
    assert.equal(
      refusal(() => loadConfig(workerConfigSchema, undefined, { maxConcurent: 2 })),
      "unknown key 'maxConcurent' in the flags; did you mean 'maxConcurrent'?",
    );
    const c = loadConfig(clientConfigSchema, undefined, {
      apiKey: undefined,
      allowedOrigin: undefined,
      backend: { kind: undefined },
      httpPort: '10001',
    });
    assert.equal(c.httpPort, 10001);
  });

  test('a typo in a nested backend key is refused with the nearest backend key', () => {
    const path = file({ backend: { kind: 'openai-compatible', upstrem: 'http://127.0.0.1:8000/v1' } });
    assert.equal(
      refusal(() => loadConfig(workerConfigSchema, path, {})),
      `unknown key 'backend.upstrem' in ${path}; did you mean 'backend.upstream'?`,
    );
  });

  test('an option of the other backend is refused, saying which backend it belongs to', () => {
    const engine = file({ backend: { kind: 'builtin', upstream: 'http://127.0.0.1:8000/v1' } });
    assert.equal(
      refusal(() => loadConfig(workerConfigSchema, engine, {})),
      `key 'backend.upstream' in ${engine} is an option of backend 'openai-compatible', but backend.kind is 'builtin'`,
    );
    // kind left out is builtin, and the message says it was the default.
    const implicit = file({ backend: { upstream: 'http://127.0.0.1:8000/v1' } });
    assert.match(
      refusal(() => loadConfig(workerConfigSchema, implicit, {})),
      /is 'builtin' \(the default\)$/,
    );
    // From the flags: --token-delay-ms against a config file's engine.
    const onEngine = file({ backend: { kind: 'openai-compatible', upstream: 'http://127.0.0.1:8000/v1' } });
    assert.equal(
      refusal(() => loadConfig(workerConfigSchema, onEngine, { backend: { tokenDelayMs: '5' } })),
      "key 'backend.tokenDelayMs' in the flags is an option of backend 'builtin', but backend.kind is 'openai-compatible'",
    );
  });

  test('the old flat backend keys are refused, pointing to their place under backend', () => {
    const flat = file({ tokenDelayMs: 15 });
    assert.equal(
      refusal(() => loadConfig(workerConfigSchema, flat, {})),
      `key 'tokenDelayMs' in ${flat} has moved to 'backend.tokenDelayMs': {"backend": {"kind": "builtin", "tokenDelayMs": 15}}`,
    );
    const engine = file({ backend: 'openai-compatible', upstream: 'http://127.0.0.1:8000/v1' });
    assert.match(
      refusal(() => loadConfig(workerConfigSchema, engine, {})),
      /key 'upstream' in .* has moved to 'backend\.upstream': \{"backend": \{"kind": "openai-compatible", "upstream": "http:\/\/127\.0\.0\.1:8000\/v1"\}\}/,
    );
    const kindOnly = file({ backend: 'openai-compatible' });
    assert.match(
      refusal(() => loadConfig(workerConfigSchema, kindOnly, {})),
      /backend: expected an object with the backend's options: \{"kind": "openai-compatible", …\}/,
    );
  });

  test('an engine backend needs its upstream; an unknown kind names the known ones', () => {
    const noUrl = file({ backend: { kind: 'openai-compatible' } });
    assert.match(
      refusal(() => loadConfig(workerConfigSchema, noUrl, {})),
      /backend\.upstream: required by backend 'openai-compatible'/,
    );
    const vllm = file({ backend: { kind: 'vllm' } });
    assert.match(
      refusal(() => loadConfig(workerConfigSchema, vllm, {})),
      /backend\.kind: expected 'builtin' or 'openai-compatible'/,
    );
  });

  test('a valid worker config parses, backend options under backend', () => {
    const path = file({
      name: 'gpu-1',
      proxy: ['10.0.0.1:11001'],
      models: ['llama'],
      maxConcurrent: 8,
      backend: {
        kind: 'openai-compatible',
        upstream: 'http://127.0.0.1:8000/v1',
        upstreamModel: 'meta/llama',
        upstreamApiKey: 'k',
      },
    });
    const c = loadConfig(workerConfigSchema, path, { coefficient: '1500' });
    assert.deepEqual(c.backend, {
      kind: 'openai-compatible',
      upstream: 'http://127.0.0.1:8000/v1',
      upstreamModel: 'meta/llama',
      upstreamApiKey: 'k',
    });
    assert.equal(c.maxConcurrent, 8);
    assert.equal(c.coefficient, 1500);
    assert.deepEqual(c.proxy, [{ host: '10.0.0.1', port: 11001 }]);
    // Defaults: the built-in model, no delay.
    assert.deepEqual(loadConfig(workerConfigSchema, undefined, {}).backend, {
      kind: 'builtin',
      tokenDelayMs: 0,
    });
    assert.deepEqual(loadConfig(workerConfigSchema, file({ backend: { tokenDelayMs: 7 } }), {}).backend, {
      kind: 'builtin',
      tokenDelayMs: 7,
    });
  });

  test("flags merge into the file's backend, and a flag naming another kind replaces it", () => {
    const path = file({ backend: { kind: 'openai-compatible', upstream: 'http://127.0.0.1:8000/v1' } });
    const keyed = loadConfig(workerConfigSchema, path, { backend: { upstreamApiKey: 'k' } });
    assert.deepEqual(keyed.backend, {
      kind: 'openai-compatible',
      upstream: 'http://127.0.0.1:8000/v1',
      upstreamApiKey: 'k',
    });
    const builtin = loadConfig(workerConfigSchema, path, { backend: { kind: 'builtin', tokenDelayMs: '3' } });
    assert.deepEqual(builtin.backend, { kind: 'builtin', tokenDelayMs: 3 });
  });

  test('the CLI flags map to config keys, backend options under backend', () => {
    assert.deepEqual(
      flagsToConfig('worker', {
        config: 'w.json',
        backend: 'openai-compatible',
        upstream: 'http://127.0.0.1:8000/v1',
        upstreamApiKey: undefined,
        tokenDelayMs: undefined,
        model: ['a', 'b'],
        maxConcurrent: '4',
      }),
      {
        backend: { kind: 'openai-compatible', upstream: 'http://127.0.0.1:8000/v1' },
        models: ['a', 'b'],
        maxConcurrent: '4',
      },
    );
    assert.deepEqual(flagsToConfig('client', { apiKey: ['k'], allowedHost: ['h'], proxiesFromRoot: true }), {
      apiKeys: ['k'],
      allowedHosts: ['h'],
      proxiesFromRoot: true,
    });
    // Every mapped key is one the schema knows.
    assert.deepEqual(
      loadConfig(clientConfigSchema, undefined, flagsToConfig('client', { apiKey: ['k'] })).apiKeys,
      ['k'],
    );
  });

  test('the nearest key: edit distance, case and separators aside, only when close', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(nearest('maxconcurrent', ['maxConcurrent', 'coefficient']), 'maxConcurrent');
    assert.equal(nearest('stats_port', ['statsPort', 'statsHost']), 'statsPort');
    assert.equal(nearest('port', ['statsPort', 'coefficient']), undefined);
    assert.equal(nearest('x', []), undefined);
  });
});
