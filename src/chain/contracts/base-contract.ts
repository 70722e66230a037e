import {
  type Address,
  type Cell,
  type Contract,
  type ContractProvider,
  contractAddress,
  type Sender,
  SendMode,
} from '@ton/core';

type ContractClass<T> = new (address: Address, init?: { code: Cell; data: Cell }) => T;

/**
 * What every wrapper shares: an address (from code + initial data, or given), and sending a body. Works
 * with any ContractProvider — the sandbox's `openContract` and TonClient's `open` alike.
 */
export abstract class BaseContract implements Contract {
  constructor(
    readonly address: Address,
    readonly init?: { code: Cell; data: Cell },
  ) {}

  /** The contract whose address is the hash of this code and initial data. */
  protected static at<T>(cls: ContractClass<T>, code: Cell, data: Cell, workchain: number): T {
    const init = { code, data };
    return new cls(contractAddress(workchain, init), init);
  }

  static fromAddress<T>(this: ContractClass<T>, address: Address): T {
    return new this(address);
  }

  /** Sends any body; deploys the contract on the way when `init` is known and it is not active yet. */
  async sendBody(provider: ContractProvider, via: Sender, value: bigint, body: Cell): Promise<void> {
    await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body });
  }
}
