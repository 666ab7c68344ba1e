import { CvError } from "@centrovision/core";
import type { Command } from "commander";
import {
  createNodeCredential,
  readNodeSetup,
  readServiceRoleKey,
  writePasswordFile,
} from "../node-create.js";

/**
 * `node create`: the clinic server's own credential in the cloud, made once by the clinic's IT
 * person with the project's service-role key, which stays out of the server.
 */
export function addNodeCommand(
  program: Command,
  configPath: () => string,
  print: (text: string) => void,
): void {
  const node = program.command("node").description("this clinic server's node credential in the cloud");

  node
    .command("create")
    .description(
      "create this clinic server's node credential in the cloud (an Auth user the cloud lets call the sync functions only), write its password to [cloud] node_password_file and print the config line to add",
    )
    .requiredOption("--name <clinic>", 'the clinic\'s name, unique in the cloud, e.g. "Clínica Roma"')
    .requiredOption(
      "--service-role-key-file <file>",
      "a file holding the project's service-role key, owner-only: used for this command only, never stored",
    )
    .option(
      "--branch <branch...>",
      "a branch this clinic server holds, by name or id (repeat for each): it receives only their rows and what their staff need",
    )
    .option(
      "--all-branches",
      "this clinic server holds every branch (an organisation with one clinic server)",
    )
    .option(
      "--force",
      "replace this server's credential: a new one takes the clinic's name (bound to the same clinic server) and the old one is deleted in the cloud, so its password stops working",
    )
    .action(
      async (options: {
        name: string;
        serviceRoleKeyFile: string;
        branch?: string[];
        allBranches?: boolean;
        force?: boolean;
      }) => {
        const force = options.force === true;
        if (options.allBranches === true && options.branch !== undefined) {
          throw new CvError(
            "invalid_config",
            "[sync-daemon] node create: --branch and --all-branches exclude each other: name the clinic's branches, or take them all",
          );
        }
        const setup = readNodeSetup(configPath(), force);
        const serviceRoleKey = readServiceRoleKey(options.serviceRoleKeyFile);
        const credential = await createNodeCredential({
          cloudUrl: setup.cloudUrl,
          serviceRoleKey,
          name: options.name,
          branches: options.allBranches === true ? "all" : (options.branch ?? []),
          replace: force,
          timeoutMs: setup.timeoutMs,
        });
        writePasswordFile(setup.passwordFile, credential.password, force);
        print(`node user created in cloud (${new URL(setup.cloudUrl).host}): ${credential.email}`);
        print(
          `registered as the node of clinic "${options.name.trim()}", holding ${options.allBranches === true ? "every branch" : `the branches ${(options.branch ?? []).map((b) => `"${b.trim()}"`).join(", ")}`}`,
        );
        print(`password written to ${setup.passwordFile} (owner-only)`);
        print("the service-role key was used for this command only and stored nowhere");
        print(
          `\n${setup.nodeEmail === undefined ? "add to" : "replace node_email in"} [cloud] of ${configPath()}:`,
        );
        print(`node_email = "${credential.email}"`);
        print("\nthen check it with: centrovision-sync doctor");
      },
    );
}
