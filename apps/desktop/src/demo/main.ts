import { ensureUiBuilt } from "../ui-bundle.js";
import { startDemo } from "./demo-stack.js";

/** `npm run demo`: everything embedded, the URL and the switches printed, Ctrl-C stops it all. */
async function main(): Promise<void> {
  const log = (line: string) => console.log(`[demo] ${line}`);
  const portFlag = process.argv.indexOf("--port");
  const port = portFlag >= 0 ? Number(process.argv[portFlag + 1]) : 1420;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    console.error("[demo] --port needs a port number (0 picks a free one), e.g. --port 1420");
    process.exit(2);
  }
  const uiDir = await ensureUiBuilt(log);
  const demo = await startDemo({ port, uiDir, log }).catch(async (error: unknown) => {
    const busy = error instanceof Error && "code" in error && error.code === "EADDRINUSE";
    if (!busy) throw error;
    log(`el puerto ${port} está ocupado; uso uno libre`);
    return startDemo({ port: 0, uiDir, log });
  });
  let stopping: Promise<void> | null = null;
  const shutdown = (signal: string) => {
    if (stopping !== null) return;
    log(`${signal}: deteniendo todo…`);
    stopping = demo.stop().then(
      () => {
        log("listo, nada quedó en marcha");
        process.exit(0);
      },
      (error: unknown) => {
        console.error("[demo] stop failed:", error instanceof Error ? error.message : error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  const u = demo.url;
  const { receptionist, doctor, admin } = demo.accounts;
  console.log(
    [
      "",
      "CentroVision Continuity — demo en marcha",
      "",
      `  Abra la aplicación:   ${demo.appUrl}`,
      "  (la dirección lleva la clave de acceso de esta sesión: sin ella el servicio no responde)",
      "  Inicie sesión con una cuenta de demostración:",
      `    Recepción:          ${receptionist.email}  contraseña: ${receptionist.password}`,
      `    Médica:             ${doctor.email}  contraseña: ${doctor.password}`,
      `    Dirección:          ${admin.email}  contraseña: ${admin.password}  (consulta la bitácora)`,
      `  Sucursales:           ${demo.clinic.branches.map((b) => b.name).join(", ")}`,
      `  Daemon de sincronización (estado JSON): ${demo.daemonStatusUrl}/status`,
      `  Bases de datos (URL de superusuario, solo para usted): ${demo.databaseUrlsFile}`,
      "",
      "  Controles (también en el panel de desarrollador de la interfaz):",
      `    cv() { curl -X POST -H "authorization: Bearer ${demo.secret}" -H 'content-type: application/json' -d '{}' "${u}$1"; }`,
      "    cv /demo/internet/off        # cortar internet  → icono servidor",
      "    cv /demo/clinic-server/off   # detener servidor → icono sin conexión",
      "    cv /demo/clinic-server/on",
      "    cv /demo/internet/on         # volver a la nube",
      "    cv /invoke/get_connection_status",
      "",
      "  Ctrl-C detiene todo.",
      "",
    ].join("\n"),
  );
  // A machine-readable line for scripts and tests that start the demo as a child process. The
  // databases' URLs carry passwords: the cloud's is given without it, both are in databaseUrlsFile.
  const cloudDb = new URL(demo.cloudDbUrl);
  cloudDb.password = "";
  console.log(
    JSON.stringify({
      ready: true,
      url: u,
      secret: demo.secret,
      cloudDbUrl: cloudDb.href,
      databaseUrlsFile: demo.databaseUrlsFile,
    }),
  );
}

main().catch((error: unknown) => {
  console.error("[demo] could not start:", error instanceof Error ? error.message : error);
  process.exit(1);
});
