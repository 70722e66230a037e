import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

/** What each daemon prints on stdout once it is up. */
const READY: Record<Role, string> = {
  proxy: 'workers on',
  worker: 'serving',
  client: 'OpenAI API at',
};
type Role = 'proxy' | 'worker' | 'client';

/**
 * A port that was free a moment ago (the daemons are then told to use it), below the kernel's ephemeral
 * range: the outgoing connections of tests running beside this one take ephemeral ports, so they cannot
 * take it while a daemon using it restarts (a port from listen(0) is ephemeral, and was taken so).
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if (await bindable(port)) return port;
  }
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
    return low > 12_000 ? low : 32_768;
  } catch {
    return 32_768; // Linux's default
  }
}

function bindable(port: number): Promise<boolean> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** What a daemon's stats server reports (`/jsonstats`), typed by the caller for the fields it reads. */
export async function jsonstats<T>(statsPort: number): Promise<T> {
  return (await (await fetch(`http://127.0.0.1:${statsPort}/jsonstats`)).json()) as T;
}

/**
 * A daemon run as its own OS process through the real CLI (`cocoon <role> --config file`), so it can be
 * killed with SIGKILL or stopped with SIGTERM like in production. Its stdout and JSON logs are kept.
 */
export class DaemonProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    private readonly role: Role,
  ) {
    child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  static async start(role: Role, config: Record<string, unknown>, configDir: string): Promise<DaemonProcess> {
    const d = DaemonProcess.launch(role, config, configDir);
    await d.ready(30_000);
    return d;
  }

  /** Spawns the daemon without waiting for it to come up (see `ready`): for daemons that wait at boot. */
  static launch(role: Role, config: Record<string, unknown>, configDir: string): DaemonProcess {
    const file = join(configDir, `${String(config.name ?? role)}-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(config));
    return DaemonProcess.launchFile(role, file);
  }

  /** `cocoon <role> --config <file>`, as an operator starts it; resolves once it is up. */
  static async startFile(role: Role, file: string): Promise<DaemonProcess> {
    const d = DaemonProcess.launchFile(role, file);
    await d.ready(30_000);
    return d;
  }

  private static launchFile(role: Role, file: string): DaemonProcess {
    return new DaemonProcess(
      spawn(process.execPath, [bin, role, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }),
      role,
    );
  }

  /** Resolves once the daemon printed that it is up; rejects if it exits first or after `timeoutMs`. */
  ready(timeoutMs: number): Promise<void> {
    const role = this.role;
    return new Promise<void>((resolve, reject) => {
      const done = () => this.stdout.includes(READY[role]);
      if (done()) return resolve();
      const onData = () => {
        if (!done()) return;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.child.stdout!.off('data', onData);
        reject(new Error(`${role} did not start:\n${this.stdout}\n${this.stderr}`));
      }, timeoutMs);
      this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${role} exited with ${code} while starting:\n${this.stderr}`));
      });
      this.child.stdout!.on('data', onData);
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    this.child.kill(signal);
    return this.exited;
  }

  /** The JSON log lines (pino) this daemon wrote. */
  logs(): Record<string, unknown>[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}
