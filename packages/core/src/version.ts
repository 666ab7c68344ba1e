/**
 * The product's one version: every package, the daemon's Debian package and the desktop executable
 * carry it, every CLI prints it (`--version`), the daemon's `/status` and the desktop's developer
 * panel show it, and the migration runner records it in each database it migrates, so an older
 * build refuses a database a newer one has migrated (see `@centrovision/core/migrations`).
 * A test holds every package.json to it.
 */
export const PRODUCT_VERSION = "0.1.0";
