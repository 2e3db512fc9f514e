// The ESM entry: the CommonJS module's exports as named exports, and the whole module as the
// default export (what `import usockets from 'usockets-rs'` gave before there was this file).
// scripts/check-esm.mjs fails CI when this list and index.js's exports differ.
import usockets from './index.js'

export const {
  Loop,
  Timer,
  Poll,
  SocketContext,
  Socket,
  ListenSocket,
  UdpSocket,
  READABLE,
  WRITABLE,
  LISTEN_DEFAULT,
  LISTEN_EXCLUSIVE_PORT,
  TIMEOUT_GRANULARITY,
} = usockets
export default usockets
