import { resolve } from 'node:path';
import { formatTon } from '../chain/money.ts';
import { LOCAL_DEFAULTS } from '../config/local-defaults.ts';
import { startLocalNetwork } from '../local/local-network.ts';
import type { LogLevel } from '../ops/log.ts';

interface LocalFlags {
  dataDir?: string;
  httpPort?: string;
  tokenDelayMs?: string;
  prompt?: string;
  serve: boolean;
  chainPort?: string;
  free?: boolean;
  logLevel?: LogLevel;
}

const out = (s: string) => process.stdout.write(s);

/** `cocoon local`: the whole network on this machine, one real completion through it, then serve. */
export async function runLocal(f: LocalFlags): Promise<void> {
  const dataDir = resolve(f.dataDir ?? LOCAL_DEFAULTS.dataDir);
  const httpPort = f.httpPort === undefined ? LOCAL_DEFAULTS.httpPort : Number(f.httpPort);
  out('Starting a local Cocoon network in DEV TRUST mode (software attestation, no TEE)...\n');
  let net: Awaited<ReturnType<typeof startLocalNetwork>>;
  try {
    net = await startLocalNetwork({
      dataDir,
      httpPort,
      tokenDelayMs: f.tokenDelayMs === undefined ? LOCAL_DEFAULTS.tokenDelayMs : Number(f.tokenDelayMs),
      logLevel: f.logLevel ?? 'warn',
      ...(f.free
        ? {}
        : {
            payments: {
              chainPort: f.chainPort === undefined ? LOCAL_DEFAULTS.chainPort : Number(f.chainPort),
            },
          }),
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(`port ${httpPort} is in use: pass --http-port <free port> (or 0 for any)`);
    }
    throw err;
  }
  const { proxy, worker, client } = net;
  out(
    `  proxy   workers :${proxy.workerPort}  clients :${proxy.clientPort}  stats ${proxy.statsUrl}/stats\n`,
  );
  out(`  worker  built-in model 'cocoon-tiny'  stats ${worker.statsUrl}/stats\n`);
  out(`  client  stats ${client.url}/stats\n`);
  if (net.ton) {
    out(`  chain   embedded TON sandbox (dev only) ${net.ton.endpoint}  root ${net.ton.root.toString()}\n`);
    out(`  proxy contract ${proxy.billing!.proxyContract}\n`);
    out(`  client contract ${client.payments!.payer.account!.toString()}\n`);
  } else {
    out('  payments OFF (--free)\n');
  }
  out('\n');
  out(`OpenAI base URL: ${client.baseUrl}\n\n`);

  const prompt = f.prompt ?? 'Say hello to the Cocoon network.';
  out(`> ${prompt}\n`);
  const res = await fetch(`${client.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: prompt }],
      max_tokens: 60,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!res.ok || !res.body) throw new Error(`demo completion failed: ${res.status} ${await res.text()}`);
  let usage: { prompt_tokens: number; completion_tokens: number; total_cost?: number } | null = null;
  let buffered = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += Buffer.from(chunk).toString('utf8');
    let i = buffered.indexOf('\n\n');
    while (i >= 0) {
      const event = buffered.slice(0, i);
      buffered = buffered.slice(i + 2);
      i = buffered.indexOf('\n\n');
      const data = event.startsWith('data: ') ? event.slice(6) : '';
      if (!data || data === '[DONE]') continue;
      const obj = JSON.parse(data);
      if (obj.error) throw new Error(`demo completion failed: ${obj.error.message}`);
      if (obj.usage) usage = obj.usage;
      out(obj.choices?.[0]?.delta?.content ?? '');
    }
  }
  out(
    `\n\n(${usage?.prompt_tokens} prompt + ${usage?.completion_tokens} completion tokens, via client -> proxy -> worker)\n`,
  );
  if (net.ton && usage?.total_cost !== undefined) {
    out(
      `cost ${formatTon(BigInt(usage.total_cost))} TON, signed by the client and held by the proxy until settlement\n`,
    );
    const c = await net.proxy.billing!.desk.clientBalance(client.payments!.payer.account!);
    out(
      `client contract: balance ${formatTon(c.balance)} TON, stake ${formatTon(c.stake)} TON, settled so far ${formatTon(c.charged)} TON\n`,
    );
  }
  out('\n');
  if (!f.serve) {
    await net.stop();
    return;
  }
  out(`Serving. Try:\n  curl ${client.baseUrl}/chat/completions -H 'content-type: application/json' \\\n`);
  out(`    -d '{"model":"cocoon-tiny","messages":[{"role":"user","content":"hi"}]}'\nCtrl-C to stop.\n`);
  await new Promise<void>((r) => {
    process.once('SIGINT', r);
    process.once('SIGTERM', r);
  });
  out('\nStopping...\n');
  await net.stop();
}
