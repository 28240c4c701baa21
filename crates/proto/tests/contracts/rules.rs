//! The API design rules, each a function returning its violations so that a failure names
//! every offending element at once, with the lists of exceptions they consult.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

use crate::descriptors::{
    all_comments, comments_by_path, extend, has_field, index_messages, mercato_files, methods,
    to_i32,
};

/// Field names that would let a browser name whose data to act on.
const CALLER_IDENTITY_FIELDS: [&str; 4] = ["user_id", "buyer_id", "owner_id", "seller_id"];

/// Words that make a field name money-valued.
const MONEY_WORDS: [&str; 5] = ["amount", "price", "total", "discount", "balance"];

/// Fully qualified name of the one money type.
const MONEY_TYPE: &str = ".mercato.common.v1.Money";

/// Fields whose name contains a money word but which are not money, each with
/// the reason.
pub(crate) const NOT_MONEY: [(&str, &str, &str); 3] = [
    (
        "mercato.common.v1.Money",
        "amount_minor",
        "the integer inside Money itself",
    ),
    (
        "mercato.order.v1.CouponCampaign",
        "total_quantity",
        "a number of coupons",
    ),
    (
        "mercato.bff.v1.CouponCampaign",
        "total_quantity",
        "a number of coupons",
    ),
];

/// Mutations a client may retry, which therefore take an `idempotency_key`.
/// Every request carrying the field must be listed here, and the reverse.
const RETRYABLE_MUTATIONS: [&str; 25] = [
    "mercato.user.v1.SigningKeyService/RotateSigningKey",
    "mercato.product.v1.ProductService/CreateProduct",
    "mercato.product.v1.ProductService/CreateSku",
    "mercato.product.v1.StockService/AdjustStock",
    "mercato.order.v1.CartService/AddCartItem",
    "mercato.order.v1.CartService/RemoveCartItem",
    "mercato.order.v1.OrderService/CreateOrder",
    "mercato.order.v1.CouponService/CreateCoupon",
    "mercato.order.v1.CouponService/CreateCampaign",
    "mercato.order.v1.CouponService/IssueCoupon",
    "mercato.payment.v1.PaymentService/RefundPayment",
    "mercato.payment.v1.WalletService/ChargePoints",
    "mercato.payment.v1.PayoutService/CreateSellerAccount",
    "mercato.bff.v1.CartService/AddCartItem",
    "mercato.bff.v1.CartService/RemoveCartItem",
    "mercato.bff.v1.OrderService/CreateOrder",
    "mercato.bff.v1.WalletService/ChargePoints",
    "mercato.bff.v1.SellerService/CreateProduct",
    "mercato.bff.v1.SellerService/CreateSku",
    "mercato.bff.v1.SellerService/AdjustStock",
    "mercato.bff.v1.SellerService/CreateSellerAccount",
    "mercato.bff.v1.AdminService/RefundPayment",
    "mercato.bff.v1.AdminService/CreateCoupon",
    "mercato.bff.v1.AdminService/CreateCampaign",
    "mercato.bff.v1.AdminService/IssueCoupon",
];

/// Mutations that are idempotent by a natural key instead, with that key.
const NATURALLY_KEYED_MUTATIONS: [(&str, &str); 3] = [
    ("mercato.product.v1.StockService/ReserveStock", "order_id"),
    ("mercato.order.v1.CouponService/ClaimCoupon", "campaign_id"),
    ("mercato.bff.v1.CouponService/ClaimCoupon", "campaign_id"),
];

/// The file of the events package holding building blocks, not payloads.
const EVENT_TYPES_FILE: &str = "mercato/events/v1/types.proto";

/// The file whose comments list every routing key.
const ENVELOPE_FILE: &str = "mercato/events/v1/envelope.proto";

/// Routing keys the checkout saga cannot work without.
pub(crate) const SAGA_ROUTING_KEYS: [&str; 7] = [
    "order.created",
    "order.paid",
    "payment.failed",
    "order.cancelled",
    "order.expired",
    "order.shipped",
    "order.finished",
];

/// No BFF request (nor any BFF message nested in one) names a user.
pub(crate) fn bff_requests_naming_a_user(set: &FileDescriptorSet) -> Vec<String> {
    let messages = index_messages(set);
    let mut violations = Vec::new();
    for (_, method) in methods(set).filter(|(service, _)| service.starts_with("mercato.bff.v1.")) {
        let mut seen = BTreeSet::new();
        walk_bff_message(method.input_type(), &messages, &mut seen, &mut violations);
    }
    violations
}

fn walk_bff_message(
    type_name: &str,
    messages: &BTreeMap<String, &DescriptorProto>,
    seen: &mut BTreeSet<String>,
    violations: &mut Vec<String>,
) {
    // Only BFF messages are the browser's to fill; common types (Money,
    // PostalAddress) are checked by their own rules.
    if !type_name.starts_with(".mercato.bff.v1.") || !seen.insert(type_name.to_owned()) {
        return;
    }
    let Some(message) = messages.get(type_name) else {
        violations.push(format!("{type_name} is missing from the descriptor set"));
        return;
    };
    for field in &message.field {
        if CALLER_IDENTITY_FIELDS.contains(&field.name()) {
            violations.push(format!("{}.{}", &type_name[1..], field.name()));
        }
        if field.r#type() == Type::Message {
            walk_bff_message(field.type_name(), messages, seen, violations);
        }
    }
}

/// Every money-worded field is a `mercato.common.v1.Money`.
pub(crate) fn money_fields_not_using_money(set: &FileDescriptorSet) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, message) in index_messages(set) {
        let name = &name[1..];
        if !name.starts_with("mercato.") {
            continue;
        }
        for field in &message.field {
            let is_money_named = MONEY_WORDS.iter().any(|word| field.name().contains(word));
            let allowed = NOT_MONEY
                .iter()
                .any(|(message, field_name, _)| *message == name && *field_name == field.name());
            if is_money_named && !allowed && field.type_name() != MONEY_TYPE {
                violations.push(format!(
                    "{name}.{} is {:?} {}",
                    field.name(),
                    field.r#type(),
                    field.type_name()
                ));
            }
        }
    }
    violations
}

/// Every `List*` RPC pages with `page_size`, `page_token`, `next_page_token`.
pub(crate) fn list_rpcs_without_paging(set: &FileDescriptorSet) -> Vec<String> {
    let messages = index_messages(set);
    let mut violations = Vec::new();
    for (service, method) in methods(set).filter(|(_, method)| method.name().starts_with("List")) {
        let rpc = format!("{service}/{}", method.name());
        let request = messages.get(method.input_type());
        let response = messages.get(method.output_type());
        for (message, field, kind) in [
            (request, "page_size", Type::Int32),
            (request, "page_token", Type::String),
            (response, "next_page_token", Type::String),
        ] {
            if !message.is_some_and(|m| has_field(m, field, kind)) {
                violations.push(format!("{rpc} lacks {kind:?} {field}"));
            }
        }
    }
    violations
}

/// Retryable mutations take `idempotency_key`; nothing else does; naturally
/// keyed mutations carry their key.
pub(crate) fn idempotency_violations(set: &FileDescriptorSet) -> Vec<String> {
    let messages = index_messages(set);
    let mut violations = Vec::new();
    let mut listed: BTreeSet<&str> = RETRYABLE_MUTATIONS.iter().copied().collect();
    for (service, method) in methods(set) {
        let rpc = format!("{service}/{}", method.name());
        let Some(request) = messages.get(method.input_type()) else {
            violations.push(format!("{rpc}: request type missing"));
            continue;
        };
        let carries_key = request.field.iter().any(|f| f.name() == "idempotency_key");
        let must_carry = listed.remove(rpc.as_str());
        if must_carry && !has_field(request, "idempotency_key", Type::String) {
            violations.push(format!(
                "{rpc} is retryable but has no string idempotency_key"
            ));
        }
        if carries_key && !must_carry {
            violations.push(format!(
                "{rpc} has idempotency_key but is not listed as a retryable mutation"
            ));
        }
        if let Some((_, key)) = NATURALLY_KEYED_MUTATIONS
            .iter()
            .find(|(name, _)| *name == rpc)
            && !has_field(request, key, Type::String)
        {
            violations.push(format!(
                "{rpc} is idempotent by {key} but has no such field"
            ));
        }
    }
    violations.extend(
        listed
            .into_iter()
            .map(|rpc| format!("{rpc} does not exist")),
    );
    violations
}

/// Event payloads name their routing key, are named after it, and are listed
/// in the envelope's comments. Returns the violations and the routing keys.
pub(crate) fn event_violations(set: &FileDescriptorSet) -> (Vec<String>, BTreeSet<String>) {
    let mut violations = Vec::new();
    let mut keys = BTreeSet::new();
    let event_files = set
        .file
        .iter()
        .filter(|f| f.package() == "mercato.events.v1" && f.name() != EVENT_TYPES_FILE);
    for file in event_files {
        let comments = comments_by_path(file);
        for (index, message) in file.message_type.iter().enumerate() {
            if message.name() == "EventEnvelope" {
                continue;
            }
            let comment = comments
                .get(&vec![4, to_i32(index)])
                .map(String::as_str)
                .unwrap_or_default();
            let Some(key) = comment
                .lines()
                .find_map(|line| line.trim().strip_prefix("Routing key:"))
                .map(str::trim)
            else {
                violations.push(format!("{} has no \"Routing key:\" line", message.name()));
                continue;
            };
            if pascal_case(key) != message.name() {
                violations.push(format!(
                    "{} is not named after its routing key {key}",
                    message.name()
                ));
            }
            keys.insert(key.to_owned());
        }
    }
    let envelope_text = set
        .file
        .iter()
        .find(|f| f.name() == ENVELOPE_FILE)
        .map(all_comments)
        .unwrap_or_default();
    for key in &keys {
        if !envelope_text.contains(key.as_str()) {
            violations.push(format!(
                "routing key {key} is not listed in {ENVELOPE_FILE}"
            ));
        }
    }
    (violations, keys)
}

/// Every message, field, oneof, enum, enum value, service and RPC of a
/// Mercato package has a leading comment.
pub(crate) fn undocumented_elements(set: &FileDescriptorSet) -> Vec<String> {
    let mut missing = Vec::new();
    for file in mercato_files(set) {
        let comments = comments_by_path(file);
        let doc = Documented {
            comments: &comments,
            file: file.name(),
        };
        for (i, message) in file.message_type.iter().enumerate() {
            doc.message(message, file.package(), vec![4, to_i32(i)], &mut missing);
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            doc.enumeration(
                enumeration,
                file.package(),
                vec![5, to_i32(i)],
                &mut missing,
            );
        }
        for (i, service) in file.service.iter().enumerate() {
            let path = vec![6, to_i32(i)];
            let name = format!("{}.{}", file.package(), service.name());
            doc.require(&path, &name, &mut missing);
            for (j, method) in service.method.iter().enumerate() {
                let method_path = extend(&path, &[2, to_i32(j)]);
                doc.require(
                    &method_path,
                    &format!("{name}/{}", method.name()),
                    &mut missing,
                );
            }
        }
    }
    missing
}

struct Documented<'a> {
    comments: &'a HashMap<Vec<i32>, String>,
    file: &'a str,
}

impl Documented<'_> {
    fn require(&self, path: &[i32], what: &str, missing: &mut Vec<String>) {
        if !self.comments.contains_key(path) {
            missing.push(format!("{what} ({})", self.file));
        }
    }

    fn message(
        &self,
        message: &DescriptorProto,
        scope: &str,
        path: Vec<i32>,
        missing: &mut Vec<String>,
    ) {
        // Map fields compile to synthetic entry messages that have no source.
        if message.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let name = format!("{scope}.{}", message.name());
        self.require(&path, &name, missing);
        for (j, field) in message.field.iter().enumerate() {
            let what = format!("{name}.{}", field.name());
            self.require(&extend(&path, &[2, to_i32(j)]), &what, missing);
        }
        for (j, nested) in message.nested_type.iter().enumerate() {
            self.message(nested, &name, extend(&path, &[3, to_i32(j)]), missing);
        }
        for (j, enumeration) in message.enum_type.iter().enumerate() {
            self.enumeration(enumeration, &name, extend(&path, &[4, to_i32(j)]), missing);
        }
        for (j, oneof) in message.oneof_decl.iter().enumerate() {
            let what = format!("{name}.{} (oneof)", oneof.name());
            self.require(&extend(&path, &[8, to_i32(j)]), &what, missing);
        }
    }

    fn enumeration(
        &self,
        enumeration: &EnumDescriptorProto,
        scope: &str,
        path: Vec<i32>,
        missing: &mut Vec<String>,
    ) {
        let name = format!("{scope}.{}", enumeration.name());
        self.require(&path, &name, missing);
        for (j, value) in enumeration.value.iter().enumerate() {
            let what = format!("{name}.{}", value.name());
            self.require(&extend(&path, &[2, to_i32(j)]), &what, missing);
        }
    }
}

/// `stock.reservation_expired` → `StockReservationExpired`.
fn pascal_case(routing_key: &str) -> String {
    routing_key
        .split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}
