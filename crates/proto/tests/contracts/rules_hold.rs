//! The real descriptor set obeys every rule, and the rules' exception lists stay current.

use std::collections::BTreeSet;

use crate::descriptors::{descriptor_set, index_messages, mercato_files, methods};
use crate::rules::{
    NOT_MONEY, SAGA_ROUTING_KEYS, bff_requests_naming_a_user, event_violations,
    idempotency_violations, list_rpcs_without_paging, money_fields_not_using_money,
    undocumented_elements,
};

fn assert_none(violations: &[String], rule: &str) {
    assert!(
        violations.is_empty(),
        "{rule}: {} violation(s):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

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
fn list_rpcs_use_cursor_paging() {
    let set = descriptor_set();
    let lists = methods(&set)
        .filter(|(_, method)| method.name().starts_with("List"))
        .count();
    assert!(lists > 20, "list RPCs exist ({lists})");
    assert_none(&list_rpcs_without_paging(&set), "List RPCs must page");
}

#[test]
fn retryable_mutations_take_an_idempotency_key() {
    assert_none(
        &idempotency_violations(&descriptor_set()),
        "retryable mutations must take idempotency_key",
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
fn every_element_is_documented() {
    assert_none(
        &undocumented_elements(&descriptor_set()),
        "every message, field, enum, value, service and RPC needs a comment",
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
