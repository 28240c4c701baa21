// Shows a failed call: the server's message, any field violations not shown beside a field, and
// the trace id to quote to support.

import type { UiError } from "../api/errors";

interface Props {
  error: UiError | null;
  /** A heading such as "Could not save the address". */
  title?: string;
  /** Field paths shown next to their inputs, so not repeated here. */
  shownFields?: readonly string[];
}

export function ErrorBanner({ error, title, shownFields = [] }: Props) {
  if (!error) return null;
  const others = error.fields.filter(
    (v) => !shownFields.some((f) => v.field === f || v.field.endsWith(`.${f}`)),
  );
  return (
    <div
      className="alert alert-error"
      role="alert"
      data-testid="error-banner"
      data-code={error.codeName}
      data-reason={error.reason ?? ""}
    >
      {title && <p className="alert-title">{title}</p>}
      <p className="alert-message" data-testid="error-message">
        {error.message}
      </p>
      {others.length > 0 && (
        <ul className="alert-list">
          {others.map((v) => (
            <li key={v.field}>
              <code>{v.field}</code>: {v.description}
            </li>
          ))}
        </ul>
      )}
      {(error.traceId || error.requestId) && (
        <p className="alert-meta" data-testid="error-trace">
          For support, quote {error.traceId ? <>trace id <code>{error.traceId}</code></> : null}
          {error.traceId && error.requestId ? " and " : null}
          {error.requestId ? <>request id <code>{error.requestId}</code></> : null}.
        </p>
      )}
    </div>
  );
}
