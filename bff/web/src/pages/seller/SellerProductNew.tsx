// Create a product (DRAFT) with its initial SKUs.

import { useRef, useState } from "react";
import { useNavigate } from "react-router";
import { idempotencyKey, sellerClient } from "../../api/client";
import { toUiError, type UiError } from "../../api/errors";
import { useTitle } from "../../lib/useTitle";
import { emptyDraft, productInput } from "./draft";
import { ProductForm } from "./ProductForm";

export function SellerProductNewPage() {
  useTitle("New product");
  const navigate = useNavigate();
  const [draft, setDraft] = useState(emptyDraft);
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per form: a retry after a network failure replays instead of creating twice; an edit
  // of the form starts a new request, so a new key.
  const key = useRef(idempotencyKey());

  const onChange = (next: typeof draft) => {
    key.current = idempotencyKey();
    setDraft(next);
  };

  const onSubmit = async () => {
    const built = productInput(draft, true);
    if ("error" in built) {
      setError(built.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const response = await sellerClient.createProduct({ product: built.input, idempotencyKey: key.current });
      navigate(`/seller/products/${response.product?.productId ?? ""}`, { state: { created: true } });
    } catch (e) {
      setError(toUiError(e));
      setBusy(false);
    }
  };

  return (
    <div className="page">
      <h1>New product</h1>
      <p className="muted">New products start as drafts; publish them when they are ready.</p>
      <ProductForm draft={draft} onChange={onChange} onSubmit={onSubmit} error={error} busy={busy}
        submitLabel="Create draft" withSkus />
    </div>
  );
}
