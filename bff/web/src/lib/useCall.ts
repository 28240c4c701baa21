// Runs a client call when its inputs change and tracks loading / data / error; a call whose
// inputs changed (or whose component unmounted) before it finished is aborted and ignored.

import { type DependencyList, useCallback, useEffect, useState } from "react";
import { toUiError, type UiError } from "../api/errors";

export interface CallState<T> {
  data: T | undefined;
  error: UiError | null;
  loading: boolean;
  /** Runs the call again with the same inputs. */
  reload: () => void;
  /** Replaces the data (after a mutation answered with the new value). */
  setData: (data: T) => void;
}

export function useCall<T>(
  call: (signal: AbortSignal) => Promise<T>,
  deps: DependencyList,
): CallState<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<UiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    call(controller.signal).then(
      (value) => {
        if (controller.signal.aborted) return;
        setData(value);
        setLoading(false);
      },
      (thrown: unknown) => {
        if (controller.signal.aborted) return;
        setError(toUiError(thrown));
        setLoading(false);
      },
    );
    return () => controller.abort();
    // The inputs are `deps` (and the reload counter), not the call closure, which is new on every render.
  }, [...deps, generation]);

  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return { data, error, loading, reload, setData };
}
