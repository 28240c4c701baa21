//! The catalog's pure rules: product and SKU drafts, their validation (one violation per bad
//! field, paths as in the API, e.g. `product.skus[1].price`), publication states and who may see
//! or change what. No I/O here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Highest accepted unit price, in minor units (the `Sku.price` contract).
pub const MAX_PRICE_MINOR: i64 = 100_000_000_000;
/// SKUs per product.
pub const MAX_SKUS: usize = 100;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path, e.g. `product.skus[0].price`.
    pub field: String,
    /// What is wrong, lowercase.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Publication state of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Being prepared; owner and admins only.
    Draft,
    /// Visible to everyone.
    Published,
    /// Withdrawn; owner and admins only.
    Hidden,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Published => "PUBLISHED",
            Self::Hidden => "HIDDEN",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "DRAFT" => Some(Self::Draft),
            "PUBLISHED" => Some(Self::Published),
            "HIDDEN" => Some(Self::Hidden),
            _ => None,
        }
    }
}

/// Who is calling, as far as the catalog cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// No forwarded user and no internal caller.
    Anonymous,
    /// A forwarded user.
    User {
        /// The user id.
        id: Uuid,
        /// Holds ROLE_SELLER.
        seller: bool,
        /// Holds ROLE_ADMIN.
        admin: bool,
    },
    /// Another service acting on its own behalf.
    Internal,
}

impl Viewer {
    /// Whether the viewer may see a non-deleted product of `seller_id` in `status`.
    pub fn can_see(self, seller_id: Uuid, status: Status) -> bool {
        status == Status::Published || self.is_privileged_for(seller_id)
    }

    /// Owner (with ROLE_SELLER), admin or internal caller.
    pub fn is_privileged_for(self, seller_id: Uuid) -> bool {
        match self {
            Self::Anonymous => false,
            Self::Internal => true,
            Self::User { id, seller, admin } => admin || (seller && id == seller_id),
        }
    }

    /// Whether the viewer is an admin.
    pub fn is_admin(self) -> bool {
        matches!(self, Self::User { admin: true, .. })
    }
}

/// A variant-defining option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductOption {
    /// e.g. "Colour".
    pub name: String,
    /// e.g. ["Red", "Blue"].
    pub values: Vec<String>,
}

/// A product image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Absolute URL.
    pub url: String,
    /// Alternative text.
    pub alt_text: String,
    /// Main image flag.
    pub main: bool,
}

/// The editable fields of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDraft {
    /// 1-200 characters.
    pub name: String,
    /// At most 10,000 characters.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Lower-cased unique tags.
    pub tags: Vec<String>,
    /// Descriptive attributes.
    pub attributes: BTreeMap<String, String>,
    /// Variant options.
    pub options: Vec<ProductOption>,
    /// Images in display order.
    pub images: Vec<Image>,
    /// Featured on the home page (admins only).
    pub featured: bool,
}

/// The editable fields of a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuDraft {
    /// Stock-keeping code.
    pub sku_code: String,
    /// Option name → value.
    pub option_values: BTreeMap<String, String>,
    /// Unit price in minor units.
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency_code: String,
    /// Purchasable flag.
    pub active: bool,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

impl ProductDraft {
    /// Trims strings, lower-cases and de-duplicates tags, and flags the first image as main when
    /// none is.
    pub fn normalize(&mut self) {
        self.name = self.name.trim().to_owned();
        self.description = self.description.trim().to_owned();
        self.category = self.category.trim().to_owned();
        let mut seen = BTreeSet::new();
        self.tags = std::mem::take(&mut self.tags)
            .into_iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| seen.insert(t.clone()))
            .collect();
        self.attributes = std::mem::take(&mut self.attributes)
            .into_iter()
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        for option in &mut self.options {
            option.name = option.name.trim().to_owned();
            for value in &mut option.values {
                *value = value.trim().to_owned();
            }
        }
        for image in &mut self.images {
            image.url = image.url.trim().to_owned();
            image.alt_text = image.alt_text.trim().to_owned();
        }
        if !self.images.iter().any(|i| i.main)
            && let Some(first) = self.images.first_mut()
        {
            first.main = true;
        }
    }

    /// Every violation of the product's own fields, under `prefix` (e.g. `product`).
    pub fn validate(&self, prefix: &str) -> Vec<Violation> {
        let mut v = Vec::new();
        let at = |field: &str| format!("{prefix}.{field}");
        if self.name.is_empty() {
            v.push(Violation::new(at("name"), "is required"));
        } else if chars(&self.name) > 200 {
            v.push(Violation::new(at("name"), "must be at most 200 characters"));
        }
        if chars(&self.description) > 10_000 {
            v.push(Violation::new(
                at("description"),
                "must be at most 10000 characters",
            ));
        }
        let slug_ok = (1..=64).contains(&self.category.len())
            && self
                .category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug_ok {
            v.push(Violation::new(
                at("category"),
                "must be 1-64 characters of a-z, 0-9 and '-'",
            ));
        }
        if self.tags.len() > 20 {
            v.push(Violation::new(at("tags"), "must hold at most 20 tags"));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if !(1..=50).contains(&chars(tag)) {
                v.push(Violation::new(
                    format!("{prefix}.tags[{i}]"),
                    "must be 1-50 characters",
                ));
            }
        }
        if self.attributes.len() > 20 {
            v.push(Violation::new(
                at("attributes"),
                "must hold at most 20 entries",
            ));
        }
        for (key, value) in &self.attributes {
            if !(1..=64).contains(&chars(key)) || !(1..=200).contains(&chars(value)) {
                v.push(Violation::new(
                    format!("{prefix}.attributes[{key}]"),
                    "keys must be 1-64 and values 1-200 characters",
                ));
            }
        }
        self.validate_options(prefix, &mut v);
        self.validate_images(prefix, &mut v);
        v
    }

    fn validate_options(&self, prefix: &str, v: &mut Vec<Violation>) {
        if self.options.len() > 3 {
            v.push(Violation::new(
                format!("{prefix}.options"),
                "must hold at most 3 options",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, option) in self.options.iter().enumerate() {
            let path = format!("{prefix}.options[{i}]");
            if !(1..=50).contains(&chars(&option.name)) {
                v.push(Violation::new(
                    format!("{path}.name"),
                    "must be 1-50 characters",
                ));
            } else if !names.insert(option.name.to_lowercase()) {
                v.push(Violation::new(format!("{path}.name"), "must be unique"));
            }
            let unique: BTreeSet<&String> = option.values.iter().collect();
            if !(1..=30).contains(&option.values.len())
                || unique.len() != option.values.len()
                || option.values.iter().any(|x| !(1..=50).contains(&chars(x)))
            {
                v.push(Violation::new(
                    format!("{path}.values"),
                    "must be 1-30 unique values of 1-50 characters",
                ));
            }
        }
    }

    fn validate_images(&self, prefix: &str, v: &mut Vec<Violation>) {
        if self.images.len() > 20 {
            v.push(Violation::new(
                format!("{prefix}.images"),
                "must hold at most 20 images",
            ));
        }
        if self.images.iter().filter(|i| i.main).count() > 1 {
            v.push(Violation::new(
                format!("{prefix}.images"),
                "at most one image may be main",
            ));
        }
        for (i, image) in self.images.iter().enumerate() {
            if !valid_image_url(&image.url) {
                v.push(Violation::new(
                    format!("{prefix}.images[{i}].url"),
                    "must be an absolute https url of at most 2048 characters",
                ));
            }
            if chars(&image.alt_text) > 200 {
                v.push(Violation::new(
                    format!("{prefix}.images[{i}].alt_text"),
                    "must be at most 200 characters",
                ));
            }
        }
    }

    /// URL of the main image, if any.
    pub fn main_image_url(&self) -> Option<&str> {
        self.images.iter().find(|i| i.main).map(|i| i.url.as_str())
    }
}

/// https, or http to a loopback host (development).
fn valid_image_url(url: &str) -> bool {
    if url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return false;
    }
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            return false;
        }
        rest
    } else {
        return false;
    };
    !rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .is_empty()
}

/// A syntactically valid ISO 4217 code.
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl SkuDraft {
    /// Trims strings.
    pub fn normalize(&mut self) {
        self.sku_code = self.sku_code.trim().to_owned();
        self.option_values = std::mem::take(&mut self.option_values)
            .into_iter()
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
    }

    /// Violations of the SKU's fields under `prefix` (e.g. `product.skus[0]`), against the
    /// product's `options`. The currency is checked against the shop's separately.
    pub fn validate(&self, prefix: &str, options: &[ProductOption]) -> Vec<Violation> {
        let mut v = Vec::new();
        let code_ok = (1..=64).contains(&self.sku_code.len())
            && self
                .sku_code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !code_ok {
            v.push(Violation::new(
                format!("{prefix}.sku_code"),
                "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
        if self.price_minor <= 0 {
            v.push(Violation::new(
                format!("{prefix}.price"),
                "must be greater than zero",
            ));
        } else if self.price_minor > MAX_PRICE_MINOR {
            v.push(Violation::new(
                format!("{prefix}.price"),
                format!("must be at most {MAX_PRICE_MINOR} minor units"),
            ));
        }
        if !valid_currency(&self.currency_code) {
            v.push(Violation::new(
                format!("{prefix}.price.currency_code"),
                "must be a three-letter upper-case iso 4217 code",
            ));
        }
        if let Some(problem) = option_values_problem(&self.option_values, options) {
            v.push(Violation::new(format!("{prefix}.option_values"), problem));
        }
        v
    }
}

/// Why `values` does not pick exactly one declared value of every option, if it does not.
pub fn option_values_problem(
    values: &BTreeMap<String, String>,
    options: &[ProductOption],
) -> Option<String> {
    for key in values.keys() {
        if !options.iter().any(|o| &o.name == key) {
            return Some(format!(
                "names {key:?}, which is not an option of the product"
            ));
        }
    }
    for option in options {
        match values.get(&option.name) {
            None => return Some(format!("must name option {:?}", option.name)),
            Some(value) if !option.values.contains(value) => {
                return Some(format!(
                    "{value:?} is not a value of option {:?}",
                    option.name
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// Violations of a product's whole SKU set: count, codes and option combinations unique within
/// the set, one SKU only for a product without options.
pub fn validate_sku_set(
    skus: &[SkuDraft],
    options: &[ProductOption],
    prefix: &str,
) -> Vec<Violation> {
    let mut v = Vec::new();
    if skus.is_empty() || skus.len() > MAX_SKUS {
        v.push(Violation::new(
            format!("{prefix}.skus"),
            format!("must hold 1-{MAX_SKUS} skus"),
        ));
    }
    if options.is_empty() && skus.len() > 1 {
        v.push(Violation::new(
            format!("{prefix}.skus"),
            "a product without options has exactly one sku",
        ));
    }
    let mut codes = BTreeSet::new();
    let mut combinations = BTreeSet::new();
    for (i, sku) in skus.iter().enumerate() {
        if !codes.insert(sku.sku_code.as_str()) {
            v.push(Violation::new(
                format!("{prefix}.skus[{i}].sku_code"),
                "duplicates another sku of the request",
            ));
        }
        if !options.is_empty() && sku.active && !combinations.insert(&sku.option_values) {
            v.push(Violation::new(
                format!("{prefix}.skus[{i}].option_values"),
                "duplicates the combination of another sku",
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ProductDraft {
        ProductDraft {
            name: " Mug ".to_owned(),
            description: String::new(),
            category: "kitchen".to_owned(),
            tags: vec!["Handmade".to_owned(), "handmade".to_owned()],
            attributes: BTreeMap::new(),
            options: vec![ProductOption {
                name: "Colour".to_owned(),
                values: vec!["Red".to_owned(), "Blue".to_owned()],
            }],
            images: vec![Image {
                url: "https://cdn.example.com/a.jpg".to_owned(),
                alt_text: String::new(),
                main: false,
            }],
            featured: false,
        }
    }

    #[test]
    fn normalizing_trims_dedups_tags_and_picks_a_main_image() {
        let mut d = draft();
        d.normalize();
        assert_eq!(d.name, "Mug");
        assert_eq!(d.tags, vec!["handmade".to_owned()]);
        assert!(d.images.first().is_some_and(|i| i.main));
        assert!(d.validate("product").is_empty());
    }

    #[test]
    fn plain_http_is_only_allowed_for_loopback_images() {
        assert!(valid_image_url("http://localhost:8080/a.png"));
        assert!(valid_image_url("http://127.0.0.1/a.png"));
        assert!(!valid_image_url("http://example.com/a.png"));
        assert!(!valid_image_url("ftp://example.com/a.png"));
        assert!(!valid_image_url("https:///a.png"));
    }

    #[test]
    fn a_sku_must_pick_a_declared_value_of_every_option() {
        let d = draft();
        let sku = |pairs: &[(&str, &str)]| SkuDraft {
            sku_code: "MUG-1".to_owned(),
            option_values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            price_minor: 100,
            currency_code: "JPY".to_owned(),
            active: true,
        };
        assert!(
            sku(&[("Colour", "Red")])
                .validate("s", &d.options)
                .is_empty()
        );
        assert_eq!(sku(&[]).validate("s", &d.options).len(), 1);
        assert_eq!(
            sku(&[("Colour", "Green")]).validate("s", &d.options).len(),
            1
        );
        assert_eq!(
            sku(&[("Colour", "Red"), ("Size", "M")])
                .validate("s", &d.options)
                .len(),
            1
        );
    }

    #[test]
    fn prices_must_be_positive_and_bounded() {
        let mut sku = SkuDraft {
            sku_code: "A".to_owned(),
            option_values: BTreeMap::new(),
            price_minor: 0,
            currency_code: "JPY".to_owned(),
            active: true,
        };
        assert_eq!(sku.validate("s", &[]).len(), 1);
        sku.price_minor = MAX_PRICE_MINOR + 1;
        assert_eq!(sku.validate("s", &[]).len(), 1);
        sku.price_minor = MAX_PRICE_MINOR;
        assert!(sku.validate("s", &[]).is_empty());
    }
}
