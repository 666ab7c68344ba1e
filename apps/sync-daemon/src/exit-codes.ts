/** Process exit codes (sysexits.h): the systemd unit does not restart on EX_CONFIG. */
export const EXIT_OK = 0;
export const EXIT_SYNC_FAILURE = 1;
export const EX_CONFIG = 78;
