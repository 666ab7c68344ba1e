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
      "--force",
      "replace this server's credential: a new one takes the clinic's name (bound to the same clinic server) and the old one is deleted in the cloud, so its password stops working",
    )
    .action(async (options: { name: string; serviceRoleKeyFile: string; force?: boolean }) => {
      const force = options.force === true;
      const setup = readNodeSetup(configPath(), force);
      const serviceRoleKey = readServiceRoleKey(options.serviceRoleKeyFile);
      const credential = await createNodeCredential({
        cloudUrl: setup.cloudUrl,
        serviceRoleKey,
        name: options.name,
        replace: force,
        timeoutMs: setup.timeoutMs,
      });
      writePasswordFile(setup.passwordFile, credential.password, force);
      print(`node user created in cloud (${new URL(setup.cloudUrl).host}): ${credential.email}`);
      print(`registered as the node of clinic "${options.name.trim()}"`);
      print(`password written to ${setup.passwordFile} (owner-only)`);
      print("the service-role key was used for this command only and stored nowhere");
      print(
        `\n${setup.nodeEmail === undefined ? "add to" : "replace node_email in"} [cloud] of ${configPath()}:`,
      );
      print(`node_email = "${credential.email}"`);
      print("\nthen check it with: centrovision-sync doctor");
    });
}
