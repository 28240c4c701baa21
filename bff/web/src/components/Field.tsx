// A labelled form control with its hint and its field violation, wired for screen readers
// (aria-invalid, aria-describedby).

import { type ReactNode, useId } from "react";

interface BaseProps {
  label: string;
  hint?: ReactNode;
  error?: string | undefined;
  /** The field path, for tests and for matching violations. */
  name: string;
}

type InputProps = BaseProps &
  Omit<React.InputHTMLAttributes<HTMLInputElement>, "name" | "id"> & { as?: "input" };
type TextAreaProps = BaseProps &
  Omit<React.TextareaHTMLAttributes<HTMLTextAreaElement>, "name" | "id"> & { as: "textarea" };

export function Field(props: InputProps | TextAreaProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const { label, hint, error, name } = props;
  const describedBy = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(" ");
  const common = {
    id,
    name,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": describedBy || undefined,
  } as const;

  let control: ReactNode;
  if (props.as === "textarea") {
    const { label: _l, hint: _h, error: _e, name: _n, as: _a, ...rest } = props;
    control = <textarea {...rest} {...common} />;
  } else {
    const { label: _l, hint: _h, error: _e, name: _n, as: _a, ...rest } = props;
    control = <input {...rest} {...common} />;
  }
  return (
    <div className={`field${error ? " field-invalid" : ""}`}>
      <label htmlFor={id}>
        {label}
        {props.required ? <span aria-hidden="true"> *</span> : null}
      </label>
      {control}
      {hint ? (
        <p className="field-hint" id={hintId}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className="field-error" id={errorId} data-testid={`field-error-${name}`}>
          {error}
        </p>
      ) : null}
    </div>
  );
}
