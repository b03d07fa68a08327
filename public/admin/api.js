// Calls to the admin API with the session's access token. A 401 refreshes the session once and
// retries; an error keeps the API's own words (`{"error":{"code","message"}}`). While a call is
// on its way the page's progress bar shows.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let session = null;
let pending = 0;

export function useSession(value) {
  session = value;
}

function progress(delta) {
  pending += delta;
  document.body.toggleAttribute("data-busy", pending > 0);
}

/** `method path` with an optional JSON `body`; the answer's JSON, or an ApiError. */
export async function api(method, path, body) {
  progress(1);
  try {
    const send = async () =>
      fetch(path, {
        method,
        headers: {
          Authorization: `Bearer ${(await session.token()) ?? ""}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    let response = await send();
    if (response.status === 401 && (await session.refresh())) response = await send();
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      throw new ApiError(response.status, error.code ?? "http_" + response.status, error.message ?? response.statusText);
    }
    return data;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(0, "network", error.message);
  } finally {
    progress(-1);
  }
}

/** A query string of the defined values of `params`. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}
