import { existsSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { ConfigError, clientConfigSchema, loadConfig } from '../config/config.ts';
import { choicesAt, defaultAt, showDefault } from '../config/strict.ts';
import { trustModeOf } from '../config/trust-mode.ts';
import {
  type AuditReport,
  type LogLine,
  logPath,
  type Problem,
  type ProblemCode,
  receiptsDir,
  verifyLog,
  verifyOne,
} from '../protocol/receipt-audit.ts';
import { CliError, out, printJson, reportError } from './chain-cli.ts';

/**
 * `cocoon receipts verify [--all | <id>]`: checks the client's receipt log offline — the chain, each
 * worker's signature, and the attestation behind each receipt — with the trust mode's verifiers, as the
 * client daemon would (the same data dir, config and collateral). Exit 0 when nothing is wrong, 1 when
 * anything is, 2 when the configuration is invalid.
 */

interface ReceiptsFlags {
  config?: string;
  dataDir?: string;
  trust?: string;
  pccsUrl?: string;
  collateralFile?: string;
  acceptTcbStatus?: string[];
  all?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** The client's data dir and trust mode, as its daemon reads them: defaults < --config < flags. */
function auditSetup(f: ReceiptsFlags) {
  const c = loadConfig(clientConfigSchema, f.config, {
    dataDir: f.dataDir,
    trust: f.trust,
    pccsUrl: f.pccsUrl,
    collateralFile: f.collateralFile,
    acceptTcbStatuses: f.acceptTcbStatus,
  });
  const setup = trustModeOf(c);
  const dir = receiptsDir(c.dataDir);
  if (!existsSync(logPath(dir))) {
    throw new CliError(`no receipt log at ${logPath(dir)} (is this the client's --data-dir?)`);
  }
  return { dir, verifiers: setup.verifiers };
}

const CHAIN: readonly ProblemCode[] = ['malformed_line', 'seq_gap', 'prev_mismatch', 'entry_mismatch'];

/** "12 receipts, chain intact, all signatures and attestations verify", or what is not. */
function summary(n: number, problems: Problem[]): string {
  const count = (pick: (c: ProblemCode) => boolean) => problems.filter((p) => pick(p.code)).length;
  const chain = count((c) => CHAIN.includes(c) || c === 'duplicate_seqno');
  const signatures = count((c) => c === 'bad_signature');
  const attestations = problems.length - chain - signatures;
  const head = `${n} receipt${n === 1 ? '' : 's'}`;
  if (problems.length === 0) return `${head}, chain intact, all signatures and attestations verify`;
  return [
    head,
    chain === 0 ? 'chain intact' : `chain broken (${chain} problem${chain === 1 ? '' : 's'})`,
    signatures === 0
      ? 'all signatures verify'
      : `${signatures} signature${signatures === 1 ? ' does' : 's do'} not verify`,
    attestations === 0
      ? 'all attestations verify'
      : `${attestations} attestation problem${attestations === 1 ? '' : 's'}`,
  ].join(', ');
}

function printAll(report: AuditReport, json: boolean): number {
  const ok = report.problems.length === 0;
  if (json) {
    printJson({
      ok,
      receipts: report.entries,
      head: report.head,
      torn: report.torn,
      problems: report.problems,
    });
    return ok ? 0 : 1;
  }
  let text = report.problems.map((p) => `${p.message}\n`).join('');
  text += `${summary(report.entries, report.problems)}\n`;
  if (report.head) text += `head ${report.head} (anchor it elsewhere to detect dropped newer entries)\n`;
  if (report.torn) {
    text +=
      `note: ${report.torn.bytes} bytes after the last complete line (a write cut off by a crash; the client ` +
      'drops them when it next opens the log)\n';
  }
  out(text);
  return ok ? 0 : 1;
}

function printOne(id: string, r: { found: LogLine | null; problems: Problem[] }, json: boolean): number {
  const ok = r.problems.length === 0;
  if (json) {
    printJson({ ok, id, entry: r.found, problems: r.problems });
    return ok ? 0 : 1;
  }
  let text = r.problems.map((p) => `${p.message}\n`).join('');
  if (r.found) {
    const x = r.found.receipt;
    text +=
      `receipt ${id} (entry ${r.found.seq}): ${ok ? 'chain, signature and attestation verify' : 'does NOT verify'}\n` +
      `  worker ${x.worker}, ${x.tier}, image ${x.image}\n  model ${x.model}\n` +
      `  tokens prompt ${x.usage.promptTokens} (cached ${x.usage.cachedTokens}), completion ` +
      `${x.usage.completionTokens} (reasoning ${x.usage.reasoningTokens})\n` +
      `  cost ${x.cost ? `${x.cost.total} nanoton` : 'unknown (no prices)'}, at ${new Date(x.time).toISOString()}\n`;
  }
  out(text);
  return ok ? 0 : 1;
}

async function receiptsVerify(id: string | undefined, f: ReceiptsFlags): Promise<number> {
  if (id !== undefined && f.all)
    throw new ConfigError('receipts verify: give --all or a receipt id, not both');
  const { dir, verifiers } = auditSetup(f);
  if (id === undefined) return printAll(await verifyLog(dir, { verifiers }), f.json === true);
  return printOne(id, await verifyOne(dir, id, { verifiers }), f.json === true);
}

/** A client config key's default as help shows it, read from the schema (never written twice). */
const clientDefault = (key: string) => showDefault(defaultAt(clientConfigSchema, [key]));

export function registerReceiptsCommands(program: Command): void {
  const receipts = program
    .command('receipts')
    .description('the receipts workers signed for this client, kept in its data dir');
  receipts
    .command('verify [id]')
    .description(
      'verify the receipt log offline: the hash chain, every signature, the attestation behind each receipt',
    )
    .option('--all', 'verify every receipt (the default without an id)')
    .option(
      '--data-dir <dir>',
      `the client's data dir (default ${clientDefault('dataDir')}); the log is in <dir>/receipts`,
    )
    .option('--config <file>', "the client's JSON config file (dataDir, trust, pccsUrl, collateralFile)")
    .addOption(
      new Option(
        '--trust <mode>',
        `trust mode whose verifiers judge the attestations (default ${clientDefault('trust')})`,
      ).choices(choicesAt(clientConfigSchema, ['trust'])!),
    )
    .option(
      '--pccs-url <url>',
      "trust tdx: Intel's collateral from this PCCS (cached in <data-dir>/collateral)",
    )
    .option('--collateral-file <file>', "trust tdx: Intel's collateral from this file")
    .option(
      '--accept-tcb-status <status>',
      'trust tdx: a TCB status accepted besides UpToDate; repeat',
      collect,
    )
    .option('--json', 'print the findings as JSON')
    .action(async (id: string | undefined, _o: unknown, cmd: Command) => {
      let code: number;
      try {
        code = await receiptsVerify(id, cmd.optsWithGlobals() as ReceiptsFlags);
      } catch (err) {
        code = reportError(err);
      }
      process.exit(code);
    });
}
