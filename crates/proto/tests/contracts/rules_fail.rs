//! Each rule can fail: these tests break a copy of the real descriptor set on purpose and
//! expect exactly the violation they introduced.

use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

use crate::descriptors::descriptor_set;
use crate::rules::{
    bff_requests_naming_a_user, event_violations, idempotency_violations, list_rpcs_without_paging,
    money_fields_not_using_money, undocumented_elements,
};

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
