//! Contract tests over the compiled descriptor set: the API design rules every
//! Mercato proto must follow (BOLA-free BFF requests, Money for money, cursor
//! paging, idempotency keys, documented events and fields).
//!
//! Each rule is a function returning its violations, so a failure names every
//! offending field at once; the `*_rule_catches_*` tests break a copy of the
//! real descriptor set on purpose to prove each rule can fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mercato_proto::FILE_DESCRIPTOR_SET;
use mercato_proto::mercato::{common, events};
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, MethodDescriptorProto,
};

// ---------------------------------------------------------------- the rules

/// Field names that would let a browser name whose data to act on.
const CALLER_IDENTITY_FIELDS: [&str; 4] = ["user_id", "buyer_id", "owner_id", "seller_id"];

/// Words that make a field name money-valued.
const MONEY_WORDS: [&str; 5] = ["amount", "price", "total", "discount", "balance"];

/// Fully qualified name of the one money type.
const MONEY_TYPE: &str = ".mercato.common.v1.Money";

/// Fields whose name contains a money word but which are not money, each with
/// the reason.
const NOT_MONEY: [(&str, &str, &str); 3] = [
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
const SAGA_ROUTING_KEYS: [&str; 7] = [
    "order.created",
    "order.paid",
    "payment.failed",
    "order.cancelled",
    "order.expired",
    "order.shipped",
    "order.finished",
];

/// No BFF request (nor any BFF message nested in one) names a user.
fn bff_requests_naming_a_user(set: &FileDescriptorSet) -> Vec<String> {
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
fn money_fields_not_using_money(set: &FileDescriptorSet) -> Vec<String> {
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
fn list_rpcs_without_paging(set: &FileDescriptorSet) -> Vec<String> {
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
fn idempotency_violations(set: &FileDescriptorSet) -> Vec<String> {
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
fn event_violations(set: &FileDescriptorSet) -> (Vec<String>, BTreeSet<String>) {
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
fn undocumented_elements(set: &FileDescriptorSet) -> Vec<String> {
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

// ------------------------------------------------------------- descriptor helpers

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("build.rs embeds a valid descriptor set")
}

fn mercato_files(set: &FileDescriptorSet) -> impl Iterator<Item = &FileDescriptorProto> {
    set.file
        .iter()
        .filter(|f| f.package().starts_with("mercato."))
}

/// Every message of every file (nested ones included) by fully qualified name
/// with a leading dot, as field and method type names spell them.
fn index_messages(set: &FileDescriptorSet) -> BTreeMap<String, &DescriptorProto> {
    fn insert<'a>(
        scope: &str,
        message: &'a DescriptorProto,
        out: &mut BTreeMap<String, &'a DescriptorProto>,
    ) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            insert(&name, nested, out);
        }
        out.insert(name, message);
    }
    let mut out = BTreeMap::new();
    for file in &set.file {
        let scope = format!(".{}", file.package());
        for message in &file.message_type {
            insert(&scope, message, &mut out);
        }
    }
    out
}

/// Every RPC of a Mercato package with its service's fully qualified name.
fn methods(set: &FileDescriptorSet) -> impl Iterator<Item = (String, &MethodDescriptorProto)> {
    mercato_files(set).flat_map(|file| {
        file.service.iter().flat_map(move |service| {
            let name = format!("{}.{}", file.package(), service.name());
            service
                .method
                .iter()
                .map(move |method| (name.clone(), method))
        })
    })
}

fn has_field(message: &DescriptorProto, name: &str, kind: Type) -> bool {
    message
        .field
        .iter()
        .any(|f: &FieldDescriptorProto| f.name() == name && f.r#type() == kind)
}

/// Leading comments of a file by source path (only non-blank ones).
fn comments_by_path(file: &FileDescriptorProto) -> HashMap<Vec<i32>, String> {
    file.source_code_info
        .iter()
        .flat_map(|info| &info.location)
        .filter_map(|location| {
            let comment = location.leading_comments().trim();
            (!comment.is_empty()).then(|| (location.path.clone(), comment.to_owned()))
        })
        .collect()
}

/// Every comment of a file (leading, trailing and detached) in one string.
fn all_comments(file: &FileDescriptorProto) -> String {
    let mut text = String::new();
    for location in file.source_code_info.iter().flat_map(|info| &info.location) {
        for comment in location
            .leading_detached_comments
            .iter()
            .map(String::as_str)
            .chain([location.leading_comments(), location.trailing_comments()])
        {
            text.push_str(comment);
            text.push('\n');
        }
    }
    text
}

fn extend(path: &[i32], more: &[i32]) -> Vec<i32> {
    path.iter().chain(more).copied().collect()
}

fn to_i32(index: usize) -> i32 {
    i32::try_from(index).expect("descriptor indices fit in i32")
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

/// A mutable top-level message of the set, for the tests that break rules on
/// purpose.
fn message_mut<'a>(set: &'a mut FileDescriptorSet, full_name: &str) -> &'a mut DescriptorProto {
    let (package, name) = full_name
        .rsplit_once('.')
        .expect("a fully qualified message name");
    set.file
        .iter_mut()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.message_type.iter_mut())
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{full_name} exists"))
}

fn assert_none(violations: &[String], rule: &str) {
    assert!(
        violations.is_empty(),
        "{rule}: {} violation(s):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

// -------------------------------------------------------------------- tests

#[test]
fn bff_requests_never_name_a_user() {
    let set = descriptor_set();
    let bff_rpcs = methods(&set)
        .filter(|(service, _)| service.starts_with("mercato.bff.v1."))
        .count();
    assert!(
        bff_rpcs > 30,
        "the BFF exposes its services ({bff_rpcs} RPCs)"
    );
    assert_none(
        &bff_requests_naming_a_user(&set),
        "BFF requests must take the caller from the token",
    );
}

#[test]
fn bff_identity_rule_catches_a_user_id_nested_in_a_request() {
    let mut set = descriptor_set();
    // ExplicitLines is nested two levels deep in CreateOrderRequest.
    let lines = message_mut(&mut set, "mercato.bff.v1.OrderLineInput");
    lines.field.push(FieldDescriptorProto {
        name: Some("buyer_id".to_owned()),
        number: Some(99),
        r#type: Some(Type::String.into()),
        ..FieldDescriptorProto::default()
    });
    assert_eq!(
        bff_requests_naming_a_user(&set),
        ["mercato.bff.v1.OrderLineInput.buyer_id"]
    );
}

#[test]
fn money_valued_fields_are_money() {
    assert_none(
        &money_fields_not_using_money(&descriptor_set()),
        "money must be mercato.common.v1.Money",
    );
}

#[test]
fn every_not_money_exception_names_a_real_field() {
    let set = descriptor_set();
    let messages = index_messages(&set);
    for (message, field, reason) in NOT_MONEY {
        let exists = messages
            .get(&format!(".{message}"))
            .is_some_and(|m| m.field.iter().any(|f| f.name() == field));
        assert!(exists, "stale exception {message}.{field} ({reason})");
    }
}

#[test]
fn money_rule_catches_a_price_stored_as_an_integer() {
    let mut set = descriptor_set();
    let sku = message_mut(&mut set, "mercato.product.v1.Sku");
    let price = sku
        .field
        .iter_mut()
        .find(|f| f.name() == "price")
        .expect("Sku has a price");
    price.r#type = Some(Type::Int64.into());
    price.type_name = None;
    assert_eq!(
        money_fields_not_using_money(&set),
        ["mercato.product.v1.Sku.price is Int64 "]
    );
}

#[test]
fn list_rpcs_use_cursor_paging() {
    let set = descriptor_set();
    let lists = methods(&set)
        .filter(|(_, method)| method.name().starts_with("List"))
        .count();
    assert!(lists > 20, "list RPCs exist ({lists})");
    assert_none(&list_rpcs_without_paging(&set), "List RPCs must page");
}

#[test]
fn paging_rule_catches_a_list_without_a_page_token() {
    let mut set = descriptor_set();
    message_mut(&mut set, "mercato.order.v1.ListOrdersRequest")
        .field
        .retain(|f| f.name() != "page_token");
    assert_eq!(
        list_rpcs_without_paging(&set),
        ["mercato.order.v1.OrderService/ListOrders lacks String page_token"]
    );
}

#[test]
fn retryable_mutations_take_an_idempotency_key() {
    assert_none(
        &idempotency_violations(&descriptor_set()),
        "retryable mutations must take idempotency_key",
    );
}

#[test]
fn idempotency_rule_catches_a_checkout_without_a_key() {
    let mut set = descriptor_set();
    message_mut(&mut set, "mercato.order.v1.CreateOrderRequest")
        .field
        .retain(|f| f.name() != "idempotency_key");
    assert_eq!(
        idempotency_violations(&set),
        [
            "mercato.order.v1.OrderService/CreateOrder is retryable but has no string idempotency_key"
        ]
    );
}

#[test]
fn event_payloads_document_their_routing_key() {
    let (violations, keys) = event_violations(&descriptor_set());
    assert_none(&violations, "event payloads");
    for key in SAGA_ROUTING_KEYS {
        assert!(keys.contains(key), "an event payload for {key} exists");
    }
}

#[test]
fn event_rule_catches_a_payload_without_its_routing_key() {
    let mut set = descriptor_set();
    let file = set
        .file
        .iter_mut()
        .find(|f| f.name() == "mercato/events/v1/order_events.proto")
        .expect("order events file");
    for location in file
        .source_code_info
        .iter_mut()
        .flat_map(|info| &mut info.location)
    {
        if location.path == [4, 0] {
            location.leading_comments = Some("OrderCreated: an order was placed.".to_owned());
        }
    }
    let (violations, _) = event_violations(&set);
    assert_eq!(violations, ["OrderCreated has no \"Routing key:\" line"]);
}

#[test]
fn every_element_is_documented() {
    assert_none(
        &undocumented_elements(&descriptor_set()),
        "every message, field, enum, value, service and RPC needs a comment",
    );
}

#[test]
fn documentation_rule_catches_an_uncommented_field() {
    let mut set = descriptor_set();
    let file = set
        .file
        .iter_mut()
        .find(|f| f.name() == "mercato/common/v1/money.proto")
        .expect("money file");
    // Money is message 0 of its file; amount_minor is its field 1.
    for location in file
        .source_code_info
        .iter_mut()
        .flat_map(|info| &mut info.location)
    {
        if location.path == [4, 0, 2, 1] {
            location.leading_comments = None;
        }
    }
    assert_eq!(
        undocumented_elements(&set),
        ["mercato.common.v1.Money.amount_minor (mercato/common/v1/money.proto)"]
    );
}

#[test]
fn every_service_has_rpcs_and_every_package_is_v1() {
    let set = descriptor_set();
    let files: Vec<_> = mercato_files(&set).collect();
    assert!(files.len() > 30, "all Mercato files are in the set");
    for file in files {
        assert!(
            file.package().ends_with(".v1"),
            "{} has package {}",
            file.name(),
            file.package()
        );
        for service in &file.service {
            assert!(
                !service.method.is_empty(),
                "{}.{} has no RPC",
                file.package(),
                service.name()
            );
        }
    }
    let packages: BTreeSet<_> = mercato_files(&set)
        .map(|f| f.package().to_owned())
        .collect();
    let expected = [
        "bff", "common", "events", "order", "payment", "process", "product", "user",
    ]
    .map(|area| format!("mercato.{area}.v1"));
    assert_eq!(packages, BTreeSet::from(expected));
}

#[test]
fn money_round_trips_through_the_wire_format() {
    let price = common::v1::Money {
        currency_code: "JPY".to_owned(),
        amount_minor: 1_200,
    };
    let decoded = common::v1::Money::decode(price.encode_to_vec().as_slice())
        .expect("an encoded Money decodes");
    assert_eq!(decoded, price);
}

#[test]
fn event_envelope_carries_its_payload_as_any() {
    let payload = events::v1::OrderPaid {
        order_id: "0194f7a2-6c1e-7c3a-9d2b-5a8e4f1c2b3d".to_owned(),
        payment_method: common::v1::PaymentMethod::Points.into(),
        amount: Some(common::v1::Money {
            currency_code: "JPY".to_owned(),
            amount_minor: 3_400,
        }),
        lines: vec![events::v1::OrderLineSnapshot {
            sku_id: "0194f7a2-7000-7000-8000-000000000001".to_owned(),
            quantity: 2,
            ..Default::default()
        }],
        ..Default::default()
    };
    let envelope = events::v1::EventEnvelope {
        event_id: "0194f7a2-8000-7000-8000-000000000002".to_owned(),
        event_type: "order.paid".to_owned(),
        aggregate_type: "payment".to_owned(),
        aggregate_version: 3,
        producer: "payment".to_owned(),
        payload: Some(prost_types::Any {
            type_url: "type.googleapis.com/mercato.events.v1.OrderPaid".to_owned(),
            value: payload.encode_to_vec(),
        }),
        ..Default::default()
    };

    let decoded = events::v1::EventEnvelope::decode(envelope.encode_to_vec().as_slice())
        .expect("an encoded envelope decodes");
    assert_eq!(decoded, envelope);
    let any = decoded.payload.expect("the envelope keeps its payload");
    assert_eq!(
        any.type_url.rsplit_once('/').map(|(_, name)| name),
        Some("mercato.events.v1.OrderPaid")
    );
    let unpacked =
        events::v1::OrderPaid::decode(any.value.as_slice()).expect("the payload decodes");
    assert_eq!(unpacked, payload);
}
