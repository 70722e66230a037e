// Runs the fake vLLM engine in its own process for benchmarks; prints its base URL on stdout.
import { FakeVllmEngine } from '../test/fakes/fake-vllm.ts';

const tokens = Number(process.env.BENCH_TOKENS ?? 16);
const engine = new FakeVllmEngine({ tokens, tokenDelayMs: 0, servedModel: 'bench-model' });
const url = await engine.start();
process.stdout.write(`${url}\n`);
process.on('SIGTERM', () => void engine.close().then(() => process.exit(0)));
