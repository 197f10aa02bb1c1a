/** The one error type of graft serve's HTTP layer: a message for the client and the status to answer with. */

/** A request the server refuses: answered as OIP error JSON `{"error": message}` with `status`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Extra response headers (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** 400 Bad Request. */
export function badRequest(message: string): HttpError {
  return new HttpError(400, message);
}
