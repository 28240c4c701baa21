//! Loading the compiled descriptor set and walking it: files, messages by name, RPCs, fields
//! and source comments.

use std::collections::{BTreeMap, HashMap};

use mercato_proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto,
};

pub(crate) fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("build.rs embeds a valid descriptor set")
}

pub(crate) fn mercato_files(set: &FileDescriptorSet) -> impl Iterator<Item = &FileDescriptorProto> {
    set.file
        .iter()
        .filter(|f| f.package().starts_with("mercato."))
}

/// Every message of every file (nested ones included) by fully qualified name
/// with a leading dot, as field and method type names spell them.
pub(crate) fn index_messages(set: &FileDescriptorSet) -> BTreeMap<String, &DescriptorProto> {
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
pub(crate) fn methods(
    set: &FileDescriptorSet,
) -> impl Iterator<Item = (String, &MethodDescriptorProto)> {
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

pub(crate) fn has_field(message: &DescriptorProto, name: &str, kind: Type) -> bool {
    message
        .field
        .iter()
        .any(|f: &FieldDescriptorProto| f.name() == name && f.r#type() == kind)
}

/// Leading comments of a file by source path (only non-blank ones).
pub(crate) fn comments_by_path(file: &FileDescriptorProto) -> HashMap<Vec<i32>, String> {
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
pub(crate) fn all_comments(file: &FileDescriptorProto) -> String {
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

pub(crate) fn extend(path: &[i32], more: &[i32]) -> Vec<i32> {
    path.iter().chain(more).copied().collect()
}

pub(crate) fn to_i32(index: usize) -> i32 {
    i32::try_from(index).expect("descriptor indices fit in i32")
}
