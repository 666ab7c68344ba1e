export {
  CONTRACT_CASES,
  type ContractCaseId,
  type ContractContext,
  type ContractHarness,
  type ContractProbe,
  describeSourceContract,
  type SourceContractOptions,
} from "./describe-source-contract.js";
export { createFixtures, type Fixtures } from "./fixtures.js";
export { type Timed, timed } from "./timing.js";
