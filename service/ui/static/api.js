// The public HTTP API, seen from the page: URLs relative to the page (so a reverse proxy's path
// prefix is kept), the API key held in memory only, JSON errors turned into readable messages,
// and server-sent events read with fetch() (EventSource cannot send an Authorization header).

let apiKey = ""; // never written to storage: it lives as long as the page

/** Remember (or, with "", forget) the key sent as `Authorization: Bearer <key>`. */
export function setKey(key) {
  apiKey = key.trim();
}

export function hasKey() {
  return apiKey !== "";
}

/** `v1/models` → an absolute URL under the page's prefix (`/prefix/ui/` → `/prefix/v1/models`). */
export function apiUrl(path) {
  return new URL("../" + path.replace(/^\/+/, ""), document.baseURI);
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  if (apiKey) h.Authorization = "Bearer " + apiKey;
  return h;
}

/** An API error: HTTP status plus the server's `{error: {code, message, field}}`. */
export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.error) || {};
    let text = detail.message || (body && body.detail) || `HTTP ${status}`;
    if (status === 401) text += " (enter an API key at the top of the page)";
    super(text);
    this.status = status;
    this.code = detail.code;
    this.field = detail.field;
  }
}

async function check(response) {
  if (response.ok) return response;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  throw new ApiError(response.status, body);
}

/** GET a JSON document. */
export async function getJson(path) {
  const response = await check(await fetch(apiUrl(path), { headers: headers() }));
  return response.json();
}

/** GET a text artifact (e.g. a job's metrics.jsonl). */
export async function getText(path) {
  const response = await check(await fetch(apiUrl(path), { headers: headers({ Accept: "*/*" }) }));
  return response.text();
}

/** POST (or another method) a JSON body; answers the JSON reply, or null for 204. */
export async function send(path, body, method = "POST") {
  const init = { method, headers: headers({ "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await check(await fetch(apiUrl(path), init));
  return response.status === 204 ? null : response.json();
}

/**
 * Follow a server-sent event stream: `onEvent(name, data)` for each event whose data parses as
 * JSON. Resolves when the server ends the stream; `signal` (an AbortSignal) stops it early.
 */
export async function streamEvents(path, onEvent, signal) {
  const response = await check(
    await fetch(apiUrl(path), { headers: headers({ Accept: "text/event-stream" }), signal }),
  );
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) { // one event per blank-line-terminated block
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
