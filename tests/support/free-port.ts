// A TCP port nothing listens on now, on loopback: for a server a test or bench starts itself.
import { createServer } from "node:net";

/** Asks the kernel for a free loopback port (listen on 0), then gives it back for the caller. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
