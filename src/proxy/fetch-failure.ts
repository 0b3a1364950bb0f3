/**
 * Why a call to the upstream failed, in words an operator can act on: the
 * host, and the cause named by the error code, without the runtime's own
 * sentence ("Is the computer able to access the url?").
 */
const CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused (nothing listens on that port)",
  ConnectionRefused: "connection refused (nothing listens on that port)",
  ECONNRESET: "connection closed by the other end",
  ConnectionClosed: "connection closed by the other end",
  ENOTFOUND: "host name not found (DNS)",
  EAI_AGAIN: "host name lookup failed for now (DNS)",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  FailedToOpenSocket: "could not open a connection",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "TLS certificate could not be verified",
  DEPTH_ZERO_SELF_SIGNED_CERT: "TLS certificate is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "TLS certificate chain is self-signed",
  CERT_HAS_EXPIRED: "TLS certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "TLS certificate is for another host name",
};

export function describeFetchFailure(url: string, err: unknown): string {
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    // keep the text as it is
  }
  const code = (err as { code?: unknown } | null)?.code;
  const cause =
    typeof code === "string" && code !== ""
      ? (CAUSES[code] ?? `connection failed (${code})`)
      : "connection failed";
  return `upstream ${host} unreachable: ${cause}`;
}
