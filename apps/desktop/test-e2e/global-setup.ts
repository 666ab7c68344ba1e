import { ensureUiBuilt } from "../src/ui-bundle.js";
import { ensureChromium } from "./chromium.js";

/** Once per run: the browser from the OS packages, and the UI bundle the backend serves. */
export default async function setup(): Promise<void> {
  ensureChromium(console.log);
  await ensureUiBuilt(console.log);
}
