// Product status labels.

import { ProductStatus } from "../../gen/mercato/common/v1/enums_pb";

export function statusLabel(status: ProductStatus): string {
  switch (status) {
    case ProductStatus.DRAFT:
      return "Draft";
    case ProductStatus.PUBLISHED:
      return "Published";
    case ProductStatus.HIDDEN:
      return "Hidden";
    default:
      return "Unknown";
  }
}
