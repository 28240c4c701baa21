// Sets the document title per page (screen readers announce it on navigation).

import { useEffect } from "react";

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Mercato` : "Mercato";
  }, [title]);
}
