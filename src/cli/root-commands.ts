import type { Command } from 'commander';
import { deployRootCommand } from './root-deploy.ts';
import { registerRootGovernanceCommands } from './root-governance-commands.ts';

/**
 * Governance of the network's root contract: `cocoon deploy-root` and the `cocoon root …` commands
 * (`root-governance-commands.ts`; `cocoon root deploy` is deploy-root under its group).
 */
export function registerRootCommands(program: Command): void {
  deployRootCommand(
    program
      .command('deploy-root')
      .description(
        'governance: deploy a root contract owned by the wallet in --data-dir (default ~/.cocoon/governance); ' +
          'also `cocoon root deploy`',
      ),
  );
  registerRootGovernanceCommands(program);
}
